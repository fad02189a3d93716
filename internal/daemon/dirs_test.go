package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestRunRefusesUnsafeDirectories: otpgated does not start on a data_dir,
// key directory or control or self-enrollment socket directory that
// someone other than root and its own user could change (swap the database
// or key, or put a fake socket where root types passwords or users
// enroll); the error names the path and the
// fix. A directory it creates itself (0700) is fine.
func TestRunRefusesUnsafeDirectories(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(cfg string) string
		setup func(t *testing.T, dir string)
		root  bool
		want  string // "" = starts
	}{
		{"created by the daemon", nil, func(t *testing.T, dir string) {}, false, ""},
		{"world-writable data_dir", nil, func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "data"), 0o777)
		}, false, "data_dir " + "%DIR%/data: %DIR%/data is writable by group or others (mode 0777); fix: chmod go-w %DIR%/data"},
		{"group-writable parent of data_dir", replace(`data_dir = "data"`, `data_dir = "srv/data"`), func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "srv"), 0o775)
			t.Cleanup(func() { os.Chmod(filepath.Join(dir, "srv"), 0o700) })
			chownGroup(t, filepath.Join(dir, "srv"), 65534) // not the owner's private group
		}, true, "%DIR%/srv is writable by group or others (mode 0775); fix: chmod go-w %DIR%/srv"},
		{"data_dir of another user", nil, func(t *testing.T, dir string) {
			p := filepath.Join(dir, "data")
			mkdir(t, p, 0o700)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, true, "%DIR%/data is owned by nobody (uid 65534), not by root"},
		{"world-writable socket directory", func(c string) string { return c + "[control]\nsocket = \"run/control.sock\"\n" }, func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "run"), os.ModeSticky|0o777)
		}, false, "control.socket directory %DIR%/run: %DIR%/run is writable by group or others (mode 0777)"},
		{"self-enrollment socket directory created by the daemon", func(c string) string { return c + "[control]\nenroll_socket = \"pub/enroll.sock\"\n" }, func(t *testing.T, dir string) {}, false, ""},
		{"sticky world-writable self-enrollment socket directory", func(c string) string { return c + "[control]\nenroll_socket = \"tmp/enroll.sock\"\n" }, func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "tmp"), os.ModeSticky|0o777)
		}, false, "control.enroll_socket directory %DIR%/tmp: %DIR%/tmp is writable by group or others (mode 0777)"},
		{"world-writable key directory", replace(`data_dir = "data"`, `data_dir = "data"`+"\nkey_file = \"keys/seed.key\""), func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, "keys"), 0o777)
		}, false, "key_file directory %DIR%/keys: %DIR%/keys is writable by group or others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to give a directory to another user (chown)")
			}
			dir := t.TempDir()
			tt.setup(t, dir)
			cfg := writeTestConfig(t, dir, "")
			if tt.edit != nil {
				b, err := os.ReadFile(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cfg, []byte(tt.edit(string(b))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- RunWithOptions(ctx, Options{ConfigPath: cfg, Ready: ready, AuditStderr: os.Stderr}) }()
			var err error
			select {
			case <-ready:
				cancel()
				err = <-done
				if tt.want != "" {
					t.Fatalf("otpgated started; want a refusal containing %q", tt.want)
				}
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("otpgated neither started nor failed in 20 s")
			}
			want := strings.ReplaceAll(tt.want, "%DIR%", dir)
			if tt.want == "" && err != nil {
				t.Fatalf("RunWithOptions = %v, want a clean start and stop", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("RunWithOptions = %v\nwant an error containing %q", err, want)
			}
			if tt.want != "" {
				if _, err := os.Stat(filepath.Join(dir, "data", "otpgate.db")); err == nil {
					t.Error("the database was opened in spite of the refusal")
				}
			}
		})
	}
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func chownGroup(t *testing.T, p string, gid int) {
	t.Helper()
	if err := os.Chown(p, -1, gid); err != nil {
		t.Fatal(err)
	}
}
