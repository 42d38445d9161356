package api

// ForgetSavedMount drops dir from the mount table a daemon of the repository at repoDir
// saved (REPO/mounts.json), so that the next daemon does not mount it again. agentfs
// unmount calls it for a stale mount when no daemon runs; with a daemon, Unmount does it.
func ForgetSavedMount(repoDir, dir string) error {
	t := &MountTable{RepoDir: repoDir, Persist: true}
	list, err := t.SavedMounts()
	if err != nil || len(list) == 0 {
		return err
	}
	kept := make([]MountInfo, 0, len(list))
	for _, m := range list {
		if m.Dir != dir {
			kept = append(kept, m)
		}
	}
	if len(kept) == len(list) {
		return nil
	}
	return writeFileAtomic(t.statePath(), kept)
}
