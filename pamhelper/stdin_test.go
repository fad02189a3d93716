package pamhelper

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
)

// TestRunStdinNeverClosed: run by hand on a terminal, or with a pipe that
// is never closed, reading stdin to EOF would wait forever. The helper
// gives up after StdinTimeout, fails closed and sends nothing.
func TestRunStdinNeverClosed(t *testing.T) {
	srv := newFakeServer(t, testSecret, answerWith(radius.CodeAccessAccept, respondOpts{}))
	p := writeFile(t, t.TempDir(), "pam.toml", "servers = [\""+srv.addr+"\"]\nsecret = \""+testSecret+"\"\n", 0o600)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close(); pw.Close() })
	go pw.Write([]byte(testPassword)) // some bytes, but no EOF

	var logs syncBuffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- Run(context.Background(), Options{
			Args:         []string{"-config", p},
			Env:          []string{"PAM_TYPE=auth", "PAM_USER=alice"},
			Stdin:        pr,
			Euid:         os.Geteuid(),
			Log:          slog.New(slog.NewTextHandler(&logs, nil)),
			StdinTimeout: 200 * time.Millisecond,
		})
	}()
	select {
	case code := <-done:
		if code != ExitError {
			t.Errorf("exit = %d; want %d", code, ExitError)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s with a 200ms stdin timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waits for stdin after 5 s")
	}
	out := logs.String()
	if !strings.Contains(out, "no end of the authtok on stdin in time") {
		t.Errorf("log lacks the timeout reason:\n%s", out)
	}
	if strings.Contains(out, testPassword) {
		t.Errorf("log shows the partial authtok:\n%s", out)
	}
	if n := len(srv.received()); n != 0 {
		t.Errorf("server got %d packets; want none", n)
	}
}

func TestReadAuthtokWithin(t *testing.T) {
	got, err := ReadAuthtokWithin(context.Background(), strings.NewReader("pw123456\x00"), time.Second)
	if err != nil || string(got) != "pw123456" {
		t.Errorf("ReadAuthtokWithin(closed input) = %d bytes, %v; want 8 bytes", len(got), err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	if _, err := ReadAuthtokWithin(context.Background(), pr, 50*time.Millisecond); !errors.Is(err, ErrAuthtokTimeout) {
		t.Errorf("ReadAuthtokWithin(open pipe) error = %v; want ErrAuthtokTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ReadAuthtokWithin(ctx, pr, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAuthtokWithin(canceled) error = %v; want context.Canceled", err)
	}
}
