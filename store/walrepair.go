package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// repairWAL cuts the newest write-ahead log of the database in dir at its first damaged
// record, if Pebble would call the damage corruption, and reports whether it did.
//
// Why this is safe (see walfs.go): every real fsync covers the whole log, so damage can only
// lie after the last one, in data no caller was promised would survive a power cut. Pebble
// itself accepts a log that ends at a torn record; it refuses one where a later chunk says
// that an earlier offset was synced, which our skipped fsyncs make possible. Cutting the log
// there gives Pebble exactly the log a power cut after the last real fsync could leave.
// Older logs are always closed with a real fsync (walFile.Close), so they are left alone.
func repairWAL(fs vfs.FS, dir string) (bool, error) {
	logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir})
	if err != nil || len(logs) == 0 {
		return false, err
	}
	last := logs[len(logs)-1]
	if last.NumSegments() != 1 {
		return false, nil // WAL failover is not used; leave anything else to Pebble
	}
	r := last.OpenForRead()
	var off wal.Offset
	for {
		var rec io.Reader
		rec, off, err = r.NextRecord()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if err != nil {
			break
		}
	}
	r.Close()
	if errors.Is(err, io.EOF) || errors.Is(err, record.ErrUnexpectedEOF) {
		return false, nil
	}
	if !errors.Is(err, record.ErrInvalidChunk) && !errors.Is(err, record.ErrZeroedChunk) {
		return false, fmt.Errorf("read write-ahead log %s: %w", off.PhysicalFile, err)
	}
	return true, truncateFile(fs, off.PhysicalFile, off.Physical)
}

// truncateFile keeps the first size bytes of name, replacing it atomically (vfs.FS has no
// truncate): a crash during the repair leaves either the old or the new file.
func truncateFile(fs vfs.FS, name string, size int64) error {
	f, err := fs.Open(name)
	if err != nil {
		return err
	}
	keep := make([]byte, size)
	_, err = f.ReadAt(keep, 0)
	f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	tmp := name + ".repair"
	g, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = g.Write(keep)
	if err == nil {
		err = g.Sync()
	}
	if err = errors.Join(err, g.Close()); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	d, err := fs.OpenDir(fs.PathDir(name))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
