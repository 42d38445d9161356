package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/agentfs/agentfs/store"
)

// Damage to the database (issue 13): fsck describes it in a few lines when the database
// does not open (Inspect), and fsck --repair rebuilds it (Repair) from what still reads,
// the metadata copy and the checkpoint (store/salvage.go); blocks it could not salvage are
// then fetched from the remotes by the usual fsck --repair pass.

// IsDamaged reports whether err (from Open) says the repository's files are damaged.
func IsDamaged(err error) bool {
	return errors.Is(err, store.ErrDamaged) || errors.Is(err, ErrNotRepoDir)
}

// Inspect describes a repository whose database does not open or whose metadata does not
// read (err), in at most five lines: what is damaged, what is lost until it is repaired, and
// what to do.
func Inspect(dir string, openErr error) []string {
	var lines []string
	if errors.Is(openErr, ErrNotRepoDir) {
		lines = append(lines, fmt.Sprintf("damaged: format file %s", filepath.Join(dir, formatFile)))
	} else if de := store.AsDamage(openErr, filepath.Join(dir, "db")); de != nil {
		lines = append(lines, fmt.Sprintf("damaged: %s %s (%s)", de.Kind, de.Path, shorten(de.Why, 100)))
	} else {
		lines = append(lines, "damaged: "+shorten(openErr.Error(), 160))
	}
	var branches []string
	when, err := store.ReadMetadataCopy(filepath.Join(dir, store.MetadataCopyName), func(k, v []byte) error {
		if len(k) > 1 && k[0] == 'R' {
			branches = append(branches, string(k[1:]))
		}
		return nil
	})
	if err == nil {
		sort.Strings(branches)
		lines = append(lines, fmt.Sprintf("lost until repaired: every branch (%s): the repository's metadata does not read; its copy is from %s (%s ago)",
			shorten(strings.Join(branches, ", "), 120), when.Format(time.RFC3339), time.Since(when).Round(time.Second)))
	} else {
		lines = append(lines, "lost until repaired: every branch: the repository's metadata does not read, and there is no usable copy of it ("+shorten(err.Error(), 80)+")")
	}
	lines = append(lines, "run 'agentfs fsck --repair': it moves the damaged database aside, salvages every block that reads, restores the metadata from its copy and fetches the rest from the remotes")
	return lines
}

func shorten(s string, n int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// RepairReport says what Repair did.
type RepairReport struct {
	Source       string             `json:"source"` // what the blocks and metadata were salvaged from
	Salvage      store.SalvageStats `json:"salvage"`
	MetaFromCopy int                `json:"meta_from_copy"` // keys restored from the metadata copy
	CopyTime     time.Time          `json:"copy_time,omitzero"`
	Aside        string             `json:"aside"` // where the damaged database was moved
}

// Repair rebuilds the database of the repository at dir, which nobody else may hold open
// (the caller holds the repository lock). It copies every key that reads from the damaged
// database (or, if that does not open, from a copy of it without its write-ahead logs, or
// from the checkpoint), blocks only when they match their hash, adds the keys of the
// metadata copy that are missing, and moves the damaged database aside.
func Repair(ctx context.Context, dir string) (RepairReport, error) {
	var rep RepairReport
	dbDir := filepath.Join(dir, "db")
	var src *store.Store
	var srcDir string
	var scratch []string
	defer func() {
		for _, d := range scratch {
			os.RemoveAll(d)
		}
	}()
	quiet := store.Options{Logger: quietLogger()}
	if s, err := store.Open(dbDir, quiet); err == nil {
		src, srcDir, rep.Source = s, dbDir, "the database"
	}
	if src == nil {
		d := filepath.Join(dir, "db.salvage")
		scratch = append(scratch, d)
		if err := linkCopy(dbDir, d, func(name string) bool { return !strings.HasSuffix(name, ".log") && name != "LOCK" }); err == nil {
			if s, err := store.Open(d, quiet); err == nil {
				src, srcDir, rep.Source = s, d, "the database without its write-ahead logs"
			}
		}
	}
	if src == nil {
		d := filepath.Join(dir, "db.salvage-checkpoint")
		scratch = append(scratch, d)
		if err := linkCopy(filepath.Join(dir, store.CheckpointName), d, func(name string) bool { return name != "LOCK" }); err == nil {
			if s, err := store.Open(d, quiet); err == nil {
				src, srcDir, rep.Source = s, d, "the database checkpoint"
			}
		}
	}
	newDir := filepath.Join(dir, "db.new")
	os.RemoveAll(newDir)
	dst, err := store.Open(newDir, store.Options{})
	if err != nil {
		if src != nil {
			src.Close()
		}
		return rep, err
	}
	if src != nil {
		rep.Salvage, err = store.Salvage(ctx, src.DB(), srcDir, dst)
		src.Close()
		if err != nil {
			dst.Close()
			return rep, err
		}
	} else {
		rep.Source = "nothing (neither the database nor its checkpoint opens)"
	}
	rep.CopyTime, err = store.ReadMetadataCopy(filepath.Join(dir, store.MetadataCopyName), func(k, v []byte) error {
		if _, c, err := dst.DB().Get(k); err == nil {
			c.Close()
			return nil
		}
		rep.MetaFromCopy++
		return dst.DB().Set(k, v, nil)
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		dst.Close()
		return rep, err
	}
	if err := errors.Join(dst.Sync(), dst.Close()); err != nil {
		return rep, err
	}
	rep.Aside = filepath.Join(dir, "db.damaged-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.Rename(dbDir, rep.Aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	if err := os.Rename(newDir, dbDir); err != nil {
		return rep, err
	}
	return rep, writeFileSync(filepath.Join(dir, formatFile), fmt.Appendf(nil, "agentfs repository format %d\n", Format))
}

// linkCopy makes dst a copy of src's files that keep: hard links for the immutable data
// files, real copies for the rest (Pebble rewrites markers and may append to a MANIFEST).
func linkCopy(src, dst string, keep func(string) bool) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	os.RemoveAll(dst)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !keep(e.Name()) {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") || strings.HasSuffix(e.Name(), ".blob") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// quietLogger drops the store's reports while Repair probes damaged copies.
func quietLogger() *log.Logger { return log.New(io.Discard, "", 0) }
