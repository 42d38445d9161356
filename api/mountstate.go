package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentfs/agentfs/branch"
)

// The daemon keeps its mount table in the repository (REPO/mounts.json) so that a restart,
// planned (agentfs stop) or not (kill -9, a crash, a reboot), brings the mounts back. The
// file changes only on mount and unmount calls; a daemon shutting down unmounts everything
// but keeps the file as it is, for the next start.

const mountStateFile = "mounts.json"

func (t *MountTable) statePath() string {
	if !t.Persist || t.RepoDir == "" {
		return ""
	}
	return filepath.Join(t.RepoDir, mountStateFile)
}

// saveLocked writes the table; t.mu is held. A failure is logged, not returned: the mount
// itself worked, and only a restart would miss it.
func (t *MountTable) saveLocked() {
	p := t.statePath()
	if p == "" || t.closing {
		return
	}
	list := make([]MountInfo, 0, len(t.mounts))
	for _, m := range t.mounts {
		list = append(list, m.info)
	}
	if err := writeFileAtomic(p, list); err != nil && t.Logger != nil {
		t.Logger.Printf("saving the mount table: %v (mounts will not come back after a restart)", err)
	}
}

func writeFileAtomic(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

// SavedMounts reads the mount table a daemon of this repository kept (none: empty).
func (t *MountTable) SavedMounts() ([]MountInfo, error) {
	p := t.statePath()
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []MountInfo
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); remove it and mount again", p, err)
	}
	return list, nil
}

// Restore mounts what the table's file lists, over mount points a killed daemon left stale
// (ENOTCONN). A mount that cannot come back is logged and dropped from the file.
func (t *MountTable) Restore(ctx context.Context, e *branch.Engine) (restored int, err error) {
	list, err := t.SavedMounts()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, m := range list {
		if _, err := t.Mount(ctx, e, m.Ref, m.Dir, m.MountOptions); err != nil {
			errs = append(errs, fmt.Errorf("could not restore the mount of %s at %s: %w", m.Ref, m.Dir, err))
			continue
		}
		restored++
	}
	t.mu.Lock()
	t.saveLocked()
	t.mu.Unlock()
	return restored, errors.Join(errs...)
}
