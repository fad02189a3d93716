package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// matchDataDirOwner gives files that root just created in the data
// directory to that directory's owner. Without it, `sudo otpgate user add`
// on a fresh install (daemon stopped) leaves otpgate.db and seed.key owned
// by root, and otpgated, running as its own user, can no longer open them.
// Only root-owned files are changed, and only when the directory belongs
// to someone else.
func matchDataDirOwner(paths ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, p := range paths {
		dir, err := os.Stat(filepath.Dir(p))
		if err != nil {
			return fmt.Errorf("stat %s: %w", filepath.Dir(p), err)
		}
		ds, ok := dir.Sys().(*syscall.Stat_t)
		if !ok || ds.Uid == 0 {
			continue
		}
		fi, err := os.Lstat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		fs, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || fs.Uid != 0 || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Lchown(p, int(ds.Uid), int(ds.Gid)); err != nil {
			return fmt.Errorf("give %s to the owner of %s: %w", p, filepath.Dir(p), err)
		}
	}
	return nil
}
