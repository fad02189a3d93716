package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestBackupIgnoresPlantedFiles: `otpgate backup FILE` writes neither
// through a symlink planted at FILE or FILE.tmp nor into a FILE.tmp that
// another user created (and could read).
func TestBackupIgnoresPlantedFiles(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	tests := []struct {
		name  string
		plant func(t *testing.T, dst, victim string)
		root  bool
	}{
		{"symlink at FILE", func(t *testing.T, dst, victim string) {
			if err := os.Symlink(victim, dst); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"symlink at FILE.tmp", func(t *testing.T, dst, victim string) {
			if err := os.Symlink(victim, dst+".tmp"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"FILE.tmp of another user", func(t *testing.T, dst, victim string) {
			if err := os.WriteFile(dst+".tmp", []byte("precious"), 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dst+".tmp", testtool.Nobody, testtool.Nobody); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
			}
			dir := filepath.Join(e.dir, "b", string(rune('a'+i)))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, "backup.db")
			tt.plant(t, dst, victim)
			e.must("", "backup", dst)
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("the backup went through the planted link: victim holds %d bytes", len(b))
			}
			if b, err := os.ReadFile(dst + ".tmp"); err == nil && string(b) != "precious" {
				t.Errorf("the backup went into the planted FILE.tmp")
			}
			fi, err := os.Lstat(dst)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || int(st.Uid) != os.Geteuid() {
				t.Errorf("FILE is %v owned by uid %d; want a regular 0600 file of uid %d", fi.Mode(), st.Uid, os.Geteuid())
			}
			ents, _ := os.ReadDir(dir)
			for _, ent := range ents {
				if strings.HasPrefix(ent.Name(), ".otpgate-") {
					t.Errorf("temporary file %s left behind", ent.Name())
				}
			}
		})
	}
}
