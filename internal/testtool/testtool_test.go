package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, 5*time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}

	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(rec, 20*time.Millisecond, "something that never happens", func() bool { return false })
	}()
	<-done
	if !strings.Contains(rec.msg, "something that never happens") {
		t.Errorf("failure message %q does not say what was awaited", rec.msg)
	}
}

// TestServerExitingDuringStartFailsAtOnce: a server that dies before it is
// ready fails the test at once, not after the start timeout, and its
// output is kept to show.
func TestServerExitingDuringStartFailsAtOnce(t *testing.T) {
	log := &Buffer{}
	srv := startServer(t, "doomed", exec.Command(Require(t, "sh"), "-c", "echo cannot bind; exit 3"), log)
	rec := &fatalRecorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.awaitReady(rec, 30*time.Second, "doomed listening", func() bool { return false })
	}()
	<-done
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("awaitReady took %v after the server exited", took)
	}
	if !strings.Contains(rec.msg, "doomed exited (exit status 3)") {
		t.Errorf("failure message %q does not say the server exited", rec.msg)
	}
	if got := log.String(); got != "cannot bind\n" {
		t.Errorf("server output %q, want %q", got, "cannot bind\n")
	}
	srv.stop(os.Kill) // a no-op once it exited: must not block
}
