package testtool

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// server is a program a test runs in the background (PostgreSQL, slapd,
// FreeRADIUS). One goroutine waits for it and closes exited, so nothing
// else may call cmd.Wait: a server that dies at once is seen at once
// instead of after the whole start timeout.
type server struct {
	name   string
	cmd    *exec.Cmd
	log    *Buffer
	exited chan struct{}
}

// startServer starts cmd with its stdout and stderr in log.
func startServer(t testing.TB, name string, cmd *exec.Cmd, log *Buffer) *server {
	t.Helper()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	s := &server{name: name, cmd: cmd, log: log, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	return s
}

// awaitReady polls ready until it holds; the server exiting first fails
// the test at once. The output is not in the message: showLogOnFailure
// prints it, read when the test ends rather than before the wait began.
func (s *server) awaitReady(t testing.TB, timeout time.Duration, what string, ready func() bool) {
	t.Helper()
	Eventually(t, timeout, what, func() bool {
		t.Helper()
		select {
		case <-s.exited:
			t.Fatalf("%s exited (%v) while waiting for %s; its output is logged below", s.name, s.cmd.ProcessState, what)
		default:
		}
		return ready()
	})
}

// stop sends sig unless the server has already exited, and waits for it.
func (s *server) stop(sig os.Signal) {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(sig)
		<-s.exited
	}
}

// showLogOnFailure logs what a server wrote (all of log) when the test
// has failed, so a server that refused to start or misbehaved says why.
func showLogOnFailure(t testing.TB, name string, log *Buffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
}
