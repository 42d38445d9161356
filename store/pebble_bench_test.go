package store

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// BenchmarkPebbleIngest writes 64 KiB incompressible values (NoSync) into an on-disk Pebble
// with the store's options, varying value separation and memtable size; it includes the
// final flush so that compaction debt is not hidden. Run:
//
//	go test -run x -bench PebbleIngest -benchtime 4000x ./store/
func BenchmarkPebbleIngest(b *testing.B) {
	for _, c := range []struct {
		name     string
		valSep   bool
		memtable uint64
	}{
		{"default", false, 0},
		{"memtable64M", false, 64 << 20},
		{"valsep", true, 0},
		{"valsep+memtable64M", true, 64 << 20},
		{"valsep+memtable32M", true, 32 << 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			cache := pebble.NewCache(64 << 20)
			defer cache.Unref()
			o := pebbleOptions(vfs.Default, cache, nil, false)
			o.MemTableSize = c.memtable
			if !c.valSep {
				o.Experimental.ValueSeparationPolicy = nil
			}
			db, err := pebble.Open(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			val := make([]byte, 1+64<<10)
			rand.Read(val)
			key := make([]byte, 33)
			b.SetBytes(int64(len(val)))
			i := 0
			for b.Loop() {
				rand.Read(key[1:]) // hash-like keys: random order, as blocks arrive
				binary.LittleEndian.PutUint64(val[1:], uint64(i))
				if err := db.Set(key, val, pebble.NoSync); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			m := db.Metrics()
			t := m.Total()
			written := t.TableBytesFlushed + t.TableBytesCompacted + t.BlobBytesFlushed + t.BlobBytesCompacted
			b.ReportMetric(float64(written)/float64(i*len(val)), "write-amp")
			b.ReportMetric(float64(m.DiskSpaceUsage())/float64(i*len(val)), "space-amp")
			db.Close()
		})
	}
}
