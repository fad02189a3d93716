package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// fakeSocket listens on path like a socket a local user planted there and
// counts the bytes anyone sends it.
func fakeSocket(t *testing.T, path string) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					c.SetReadDeadline(time.Now().Add(3 * time.Second))
					n, err := c.Read(buf)
					got.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return &got
}

// TestCLIRefusesUnsafeSocketAndDataDir: the CLI sends nothing (not even a
// status request, let alone a password) to a control socket in a
// directory others can write, or to a socket another user owns, and does
// not open a database in such a directory; each error names the path and
// the fix.
func TestCLIRefusesUnsafeSocketAndDataDir(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *env) *atomic.Int64 // the fake socket, if any
		socket string                                   // control.socket, relative to the config
		root   bool
		want   []string
	}{
		{"socket in a world-writable directory", func(t *testing.T, e *env) *atomic.Int64 {
			mkdirMode(t, filepath.Join(e.dir, "pub"), os.ModeSticky|0o777)
			return fakeSocket(t, filepath.Join(e.dir, "pub", "control.sock"))
		}, "pub/control.sock", false, []string{"refusing to use the control socket", "/pub is writable by group or others (mode 0777); fix: chmod go-w /"}},
		{"socket of another user", func(t *testing.T, e *env) *atomic.Int64 {
			mkdirMode(t, filepath.Join(e.dir, "run"), 0o755)
			p := filepath.Join(e.dir, "run", "control.sock")
			got := fakeSocket(t, p)
			if err := os.Lchown(p, testtool.Nobody, testtool.Nobody); err != nil {
				t.Fatal(err)
			}
			return got
		}, "run/control.sock", true, []string{"control.sock is owned by nobody (uid 65534), not by root"}},
		{"world-writable data_dir", func(t *testing.T, e *env) *atomic.Int64 {
			mkdirMode(t, filepath.Join(e.dir, "data"), 0o777)
			return nil
			// No daemon (run/ does not exist): the CLI would open the store.
		}, "run/control.sock", false, []string{"data_dir /", "/data is writable by group or others (mode 0777); fix: chmod go-w /"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
			}
			e := newEnv(t)
			if tt.socket != "" {
				b, _ := os.ReadFile(e.config)
				if err := os.WriteFile(e.config, append(b, []byte("\n[control]\nsocket = \""+tt.socket+"\"\n")...), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got := tt.setup(t, e)
			r := e.run("secret-password\n", "user", "add", "alice", "--password-stdin")
			if r.code != ExitFailure {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, ExitFailure, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q\ndoes not contain %q", r.stderr, w)
				}
			}
			if got != nil {
				time.Sleep(100 * time.Millisecond)
				if n := got.Load(); n > 0 {
					t.Errorf("the CLI sent %d bytes to the planted socket", n)
				}
			}
			if _, err := os.Stat(filepath.Join(e.dir, "data", "otpgate.db")); err == nil {
				t.Error("the CLI opened a database beside an untrusted socket or in an unsafe directory")
			}
		})
	}
}

func mkdirMode(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
