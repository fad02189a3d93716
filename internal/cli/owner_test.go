package cli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

// TestOpenStoreGivesFilesToDataDirOwner: root running the CLI with the
// daemon stopped must not leave the database and key owned by root.
func TestOpenStoreGivesFilesToDataDirOwner(t *testing.T) {
	testtool.RequireRoot(t, "to create files owned by another user")
	const uid, gid = testtool.Nobody, testtool.Nobody
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{DataDir: data}
	st, err := openStore(cfg, daemonUsers(cfg), false)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	for _, p := range []string{cfg.DBPath(), cfg.KeyPath()} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		s := fi.Sys().(*syscall.Stat_t)
		if s.Uid != uid || s.Gid != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, s.Uid, s.Gid, uid, gid)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	// A root-owned data dir leaves root-owned files alone.
	rootData := filepath.Join(dir, "rootdata")
	if err := os.Mkdir(rootData, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg = &config.Config{DataDir: rootData}
	st, err = openStore(cfg, daemonUsers(cfg), false)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, err := os.Stat(cfg.DBPath()); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("root data dir: db owner changed (%v)", err)
	}
}
