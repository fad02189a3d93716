package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestOpenRefusesPlantedFiles: a symlink planted where the database, its
// login log or its key file will be created is never followed, and a
// log that another user created is not used.
func TestOpenRefusesPlantedFiles(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dbPath, victim string)
		root  bool
		want  string
	}{
		{"symlink at the database", func(t *testing.T, dbPath, victim string) {
			symlink(t, victim, dbPath)
		}, false, "symbolic link"},
		{"symlink at the login log", func(t *testing.T, dbPath, victim string) {
			symlink(t, victim, logPath(dbPath))
		}, false, "symbolic link"},
		{"symlink at the key file", func(t *testing.T, dbPath, victim string) {
			symlink(t, filepath.Join(filepath.Dir(victim), "planted.key"), filepath.Join(filepath.Dir(dbPath), DefaultKeyFileName))
		}, false, "file exists"},
		{"login log of another user", func(t *testing.T, dbPath, victim string) {
			p := logPath(dbPath)
			if err := os.WriteFile(p, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, true, "owned by nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
			}
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			dbPath := filepath.Join(data, "otpgate.db")
			tt.plant(t, dbPath, victim)
			db, err := Open(dbPath, Options{})
			if err == nil {
				db.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v, want an error containing %q", err, tt.want)
			}
			if fi, err := os.Stat(victim); err != nil || fi.Size() != 0 {
				t.Errorf("the planted link's target was written (%v)", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "planted.key")); err == nil {
				t.Error("a key was written through the planted symlink")
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
