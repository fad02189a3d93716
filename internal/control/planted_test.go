package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestListenLeavesOthersFilesAlone: Listen removes a stale socket only when
// it is this user's, never follows a symlink at the socket path, and binds
// under a name nobody could have planted a file at.
func TestListenLeavesOthersFilesAlone(t *testing.T) {
	t.Run("symlink at the socket path", func(t *testing.T) {
		dir := t.TempDir()
		victim := filepath.Join(dir, "victim")
		if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "control.sock")
		if err := os.Symlink(victim, path); err != nil {
			t.Fatal(err)
		}
		_, err := NewServer(&fakeService{}, ServerOptions{}, nil).Listen(path)
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("Listen over a symlink = %v, want a not-a-socket error", err)
		}
		if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("the symlink's target was changed: %v, %v", fi.Mode(), err)
		}
	})
	t.Run("file at the old temporary name", func(t *testing.T) {
		dir := t.TempDir()
		planted := filepath.Join(dir, fmt.Sprintf(".otpgated-%d.sock", os.Getpid()))
		if err := os.WriteFile(planted, []byte("not yours"), 0o600); err != nil {
			t.Fatal(err)
		}
		ln, err := NewServer(&fakeService{}, ServerOptions{}, nil).Listen(filepath.Join(dir, "a-socket-name-longer-than-the-temporary-one.sock"))
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if b, err := os.ReadFile(planted); err != nil || string(b) != "not yours" {
			t.Errorf("Listen removed or changed a file it did not create: %v", err)
		}
	})
	t.Run("stale socket of another user", func(t *testing.T) {
		testtool.RequireRoot(t, "to plant a socket owned by another user (chown)")
		dir := t.TempDir()
		stale := makeStaleSocket(t, dir)
		if err := os.Lchown(stale, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := NewServer(&fakeService{}, ServerOptions{}, nil).Listen(stale)
		if err == nil || !strings.Contains(err.Error(), "owned by nobody") {
			t.Errorf("Listen over another user's stale socket = %v, want a refusal", err)
		}
		if _, err := os.Lstat(stale); err != nil {
			t.Errorf("another user's socket was removed: %v", err)
		}
	})
}

// TestDialChecksPeer: a connection whose server runs as a user the client
// does not trust is refused before anything is written.
func TestDialChecksPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	me := os.Geteuid()
	if err := checkPeer(conn, path, []int{me}); err != nil {
		t.Errorf("checkPeer with this user trusted = %v", err)
	}
	err = checkPeer(conn, path, []int{me + 1})
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "nothing was sent to it") {
		t.Errorf("checkPeer with this user untrusted = %v, want ErrUntrusted", err)
	}
}
