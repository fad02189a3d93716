package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommitReplacesPlantedSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "backup.db")
	if err := os.Symlink(victim, target); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, victim); got != "precious" {
		t.Errorf("the symlink's target was written: %q", got)
	}
	fi, err := os.Lstat(target)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("target is %v, want a regular file with mode 0600", fi.Mode())
	}
	if got := readFile(t, target); got != "new" {
		t.Errorf("target holds %q", got)
	}
	assertNoTemporaryFiles(t, dir, "backup.db", "victim")
}

func TestAbortLeavesTargetAlone(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "f")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Create(target, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	p.Abort()
	p.Abort() // twice is fine
	if err := p.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if got := readFile(t, target); got != "old" {
		t.Errorf("target = %q after Abort", got)
	}
	assertNoTemporaryFiles(t, dir, "f")
}

func TestCommitNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		plant func(p string) error
	}{
		{"file", func(p string) error { return os.WriteFile(p, []byte("mine"), 0o600) }},
		{"dangling symlink", func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(dir, tt.name)
			if err := tt.plant(target); err != nil {
				t.Fatal(err)
			}
			p, err := Create(target, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			p.Write([]byte("key"))
			if err := p.CommitNew(); !errors.Is(err, fs.ErrExist) {
				t.Errorf("CommitNew over a %s = %v, want ErrExist", tt.name, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "nowhere")); !errors.Is(err, fs.ErrNotExist) {
				t.Error("CommitNew created the symlink's target")
			}
		})
	}
	target := filepath.Join(dir, "new")
	p, err := Create(target, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("key"))
	if err := p.CommitNew(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, target); got != "key" {
		t.Errorf("new file holds %q", got)
	}
	assertNoTemporaryFiles(t, dir, "file", "dangling symlink", "new")
}

func assertNoTemporaryFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".otpgate-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if len(ents) != len(want) {
		t.Errorf("directory holds %d entries, want %d (%v)", len(ents), len(want), want)
	}
}

// TestOpenFileRefusesPlanted: an append-only log path where someone else
// put a symlink, a hard link, a FIFO or a file of their own is not opened.
func TestOpenFileRefusesPlanted(t *testing.T) {
	const flags = os.O_WRONLY | os.O_APPEND | os.O_CREATE
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		plant func(p string) error
		root  bool
		want  string
	}{
		{"symlink", func(p string) error { return os.Symlink(victim, p) }, false, "is a symbolic link"},
		{"dangling symlink", func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) }, false, "is a symbolic link"},
		{"hard link", func(p string) error { return os.Link(victim, p) }, false, "has 2 hard links"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, false, "not a regular file"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, false, "is a directory"},
		{"file of another user", func(p string) error {
			if err := os.WriteFile(p, nil, 0o666); err != nil {
				return err
			}
			return os.Chown(p, testtool.Nobody, testtool.Nobody)
		}, true, "owned by nobody (uid 65534), not by this process's user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
			}
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := tt.plant(p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				f, err := OpenFile(p, flags|os.O_TRUNC, 0o600)
				if err == nil {
					f.Write([]byte("audit line\n"))
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("OpenFile = %v, want an error containing %q", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("OpenFile blocked")
			}
			if got := readFile(t, victim); got != "precious" {
				t.Errorf("the planted link's target was changed: %q", got)
			}
		})
	}
	t.Run("own file", func(t *testing.T) {
		p := filepath.Join(dir, "audit.log")
		for range 2 { // created, then reopened
			f, err := OpenFile(p, flags, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("line\n"))
			f.Close()
		}
		if got := readFile(t, p); got != "line\nline\n" {
			t.Errorf("log holds %q", got)
		}
	})
	t.Run("file of the directory's owner", func(t *testing.T) {
		testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
		// A directory nobody owns, holding nobody's file: nobody could
		// replace the file anyway, so root may use it.
		nd := filepath.Join(dir, "nobodys")
		if err := os.Mkdir(nd, 0o755); err != nil {
			t.Fatal(err)
		}
		np := filepath.Join(nd, "wal")
		if err := os.WriteFile(np, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{nd, np} {
			if err := os.Chown(q, testtool.Nobody, testtool.Nobody); err != nil {
				t.Fatal(err)
			}
		}
		f, err := OpenFile(np, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatalf("OpenFile(file of the directory's owner) = %v", err)
		}
		f.Close()
	})
}
