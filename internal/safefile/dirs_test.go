package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestSecureDir: a data or socket directory, or one above it, that someone
// other than root and the trusted users can change is refused with the
// path and the fix.
func TestSecureDir(t *testing.T) {
	// The tests build under t.TempDir(): /tmp (sticky, root) and a 0700
	// directory of this user are fine as ancestors.
	base := t.TempDir()
	mk := func(t *testing.T, rel string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chown := func(t *testing.T, p string, uid, gid int) {
		t.Helper()
		testtool.RequireRoot(t, "to give a file to another user (chown)")
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// Group files for the private-group rule: the directory's group must be
	// its owner's primary group with no other member.
	root := filepath.Join(base, "group-root-private")
	shared := filepath.Join(base, "group-root-shared")
	os.WriteFile(root, []byte("root:x:0:\n"), 0o600)
	os.WriteFile(shared, []byte("root:x:0:alice\n"), 0o600)

	tests := []struct {
		name  string
		setup func(t *testing.T) string // returns the directory to check
		group string                    // groupFile for the test ("" = leave it)
		want  string                    // "" = safe
	}{
		{"0700", func(t *testing.T) string { return mk(t, "a/data", 0o700) }, "", ""},
		{"0755 under 0755", func(t *testing.T) string { mk(t, "b", 0o755); return mk(t, "b/data", 0o755) }, "", ""},
		{"world-writable", func(t *testing.T) string { return mk(t, "c/data", 0o777) }, "", "c/data is writable by group or others (mode 0777); fix: chmod go-w " + filepath.Join(base, "c/data")},
		{"sticky is not enough for the directory itself", func(t *testing.T) string { return mk(t, "d/data", os.ModeSticky|0o777) }, "", "is writable by group or others (mode 0777)"},
		{"world-writable parent", func(t *testing.T) string { mk(t, "e", 0o777); return mk(t, "e/data", 0o700) }, "", filepath.Join(base, "e") + " is writable by group or others (mode 0777); fix: chmod go-w"},
		{"sticky parent", func(t *testing.T) string { mk(t, "f", os.ModeSticky|0o777); return mk(t, "f/data", 0o700) }, "", ""},
		{"group-writable, private group", func(t *testing.T) string {
			p := mk(t, "g/data", 0o770)
			chown(t, p, 0, 0)
			return p
		}, root, ""},
		{"group-writable, shared group", func(t *testing.T) string {
			p := mk(t, "h/data", 0o770)
			chown(t, p, 0, 0)
			return p
		}, shared, "is writable by group or others (mode 0770)"},
		{"owned by another user", func(t *testing.T) string {
			p := mk(t, "i/data", 0o700)
			chown(t, p, testtool.Nobody, testtool.Nobody)
			return p
		}, "", "i/data is owned by nobody (uid 65534), not by root; fix: chown root "},
		{"parent owned by another user", func(t *testing.T) string {
			p := mk(t, "j/data", 0o700)
			chown(t, filepath.Dir(p), testtool.Nobody, testtool.Nobody)
			return p
		}, "", "j is owned by nobody (uid 65534)"},
		{"symlink into an unsafe directory", func(t *testing.T) string {
			mk(t, "k", 0o777)
			mk(t, "k/data", 0o700)
			mk(t, "l", 0o700)
			p := filepath.Join(base, "l", "data")
			if err := os.Symlink("../k/data", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "", filepath.Join(base, "k") + " is writable by group or others"},
		{"symlink into a safe directory", func(t *testing.T) string {
			mk(t, "m/data", 0o700)
			p := filepath.Join(mk(t, "n", 0o755), "data")
			if err := os.Symlink(filepath.Join(base, "m/data"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.group != "" {
				old := groupFile
				groupFile = tt.group
				t.Cleanup(func() { groupFile = old })
			}
			dir := tt.setup(t)
			err := SecureDir(dir, os.Geteuid())
			if tt.want == "" {
				if err != nil {
					t.Errorf("SecureDir(%s) = %v, want nil", dir, err)
				}
				return
			}
			var ue *UnsafeError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SecureDir(%s) = %v, want an UnsafeError containing %q", dir, err, tt.want)
			}
		})
	}
	t.Run("trusted user", func(t *testing.T) {
		p := mk(t, "o/data", 0o700)
		chown(t, p, testtool.Nobody, testtool.Nobody)
		if err := SecureDir(p, os.Geteuid(), testtool.Nobody); err != nil {
			t.Errorf("SecureDir with the owner trusted = %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if err := SecureDir(filepath.Join(base, "nope", "data"), os.Geteuid()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("SecureDir(missing) = %v, want ErrNotExist", err)
		}
	})
}

// TestEnsureDirs: missing directories are created with their mode (a path
// listed twice with the wider one), and an unsafe one is refused with the
// caller's reason.
func TestEnsureDirs(t *testing.T) {
	base := t.TempDir()
	shared, private := filepath.Join(base, "run"), filepath.Join(base, "data")
	err := EnsureDirs([]Dir{
		{What: "socket directory", Path: shared, Mode: 0o700},
		{What: "data_dir", Path: private, Mode: 0o700},
		{What: "enroll socket directory", Path: shared, Mode: 0o755},
	}, "the reason", os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{shared: 0o755, private: 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want&^umask(t) {
			t.Errorf("%s created %v, want %v", path, got, want&^umask(t))
		}
	}

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	err = EnsureDirs([]Dir{{What: "data_dir", Path: open, Mode: 0o700}}, "the reason", os.Geteuid())
	if err == nil || !strings.Contains(err.Error(), "data_dir "+open) || !strings.Contains(err.Error(), "(the reason)") {
		t.Errorf("a world-writable directory: %v, want it refused naming data_dir and the reason", err)
	}
}

// umask is the process's file mode creation mask.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}
