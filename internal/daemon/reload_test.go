package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

// startDaemon runs RunWithOptions on cfgPath until the test ends and
// returns its log and a function that stops it and returns its error.
func startDaemon(t *testing.T, cfgPath string) (*syncBuffer, func() error) {
	t.Helper()
	logs := new(syncBuffer)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunWithOptions(ctx, Options{ConfigPath: cfgPath, Log: log, Version: "test", Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run ended during start: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("not ready after 20 s:\n%s", logs.String())
	}
	var stopped bool
	var runErr error
	stop := func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return within 15 s of cancel")
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return logs, stop
}

// sighup sends SIGHUP to this process (the daemon under test has
// subscribed) and waits until the log holds one more want than before.
func sighup(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	n := strings.Count(logs.String(), want)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), want) <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no new %s in the log after SIGHUP:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// accessRequest sends one PAP Access-Request with a wrong password from
// 127.0.0.1 and returns the answer's code, or the exchange error.
func accessRequest(ctx context.Context, addr string) (radius.Code, error) {
	p := radius.New(radius.CodeAccessRequest, []byte(testSecret))
	_ = rfc2865.UserName_SetString(p, "nobody-here")
	_ = rfc2865.UserPassword_SetString(p, "wrong-password123456")
	resp, err := radius.Exchange(ctx, p, addr)
	if err != nil {
		return 0, err
	}
	return resp.Code, nil
}

// reloadConfig is writeTestConfig with a client that may omit the
// Message-Authenticator (layeh's client does not add one) and extra keys
// in [radius].
func reloadConfig(t *testing.T, dir, radiusKeys string) (path, radiusAddr string) {
	t.Helper()
	path = writeTestConfig(t, dir, "require_message_authenticator = false\n")
	text := strings.Replace(mustRead(t, path), "[radius]\n", "[radius]\n"+radiusKeys, 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg.Radius.Listen[0]
}

// TestReloadKeepsInFlightAndSwapsClients: a request that is being answered
// (held by reject_delay) when SIGHUP removes its client still gets its
// answer; the next request from that client is dropped; a reload that
// brings the client back serves it again.
func TestReloadKeepsInFlightAndSwapsClients(t *testing.T) {
	dir := t.TempDir()
	cfgPath, addr := reloadConfig(t, dir, "reject_delay = \"2s\"\n")
	logs, stop := startDaemon(t, cfgPath)
	good := mustRead(t, cfgPath)

	type answer struct {
		code radius.Code
		err  error
	}
	inflight := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, err := accessRequest(ctx, addr)
		inflight <- answer{code, err}
	}()
	// Wait until the request is inside the reject delay: its audit record
	// is written when the decision is made, before the delay.
	auditPath := filepath.Join(dir, "audit.log")
	testtool.Eventually(t, 5*time.Second, "the request's audit record", func() bool {
		b, _ := os.ReadFile(auditPath)
		return strings.Contains(string(b), "nobody-here")
	})
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(good, `address = "127.0.0.1"`, `address = "127.0.0.9"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, logs, `msg="config reloaded"`)
	if !strings.Contains(logs.String(), `client \"lo\": address 127.0.0.1 -> 127.0.0.9`) {
		t.Errorf("reload did not log the address change:\n%s", logs.String())
	}
	a := <-inflight
	if a.err != nil || a.code != radius.CodeAccessReject {
		t.Fatalf("in-flight request across the reload: %v, %v; want Access-Reject", a.code, a.err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if code, err := accessRequest(ctx, addr); err == nil {
		t.Errorf("request from a removed client answered with %v; want it dropped", code)
	}

	if err := os.WriteFile(cfgPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, logs, `msg="config reloaded"`)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if code, err := accessRequest(ctx2, addr); err != nil || code != radius.CodeAccessReject {
		t.Errorf("request after the client came back: %v, %v; want Access-Reject", code, err)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestReloadBadConfigKeepsRunning: a reload of a broken config (here a
// syntax error on the secret line) is logged without the secret, and the
// running config keeps serving.
func TestReloadBadConfigKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	cfgPath, addr := reloadConfig(t, dir, "")
	logs, stop := startDaemon(t, cfgPath)

	broken := strings.Replace(mustRead(t, cfgPath), fmt.Sprintf("secret = %q", testSecret), "secret = "+testSecret+" oops", 1)
	if err := os.WriteFile(cfgPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	sighup(t, logs, "reload failed; keeping the running config")
	if strings.Contains(logs.String(), testSecret) || strings.Contains(logs.String(), "daemon-test-secret") {
		t.Errorf("the failed reload logged the secret:\n%s", logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if code, err := accessRequest(ctx, addr); err != nil || code != radius.CodeAccessReject {
		t.Errorf("request after a failed reload: %v, %v; want Access-Reject from the old config", code, err)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

// TestReloadLeaksNoFiles: many reloads (each reopens the audit file and
// reads the config) leave the number of open files as it was.
func TestReloadLeaksNoFiles(t *testing.T) {
	dir := t.TempDir()
	cfgPath, _ := reloadConfig(t, dir, "")
	logs, stop := startDaemon(t, cfgPath)
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	sighup(t, logs, `msg="config reloaded"`)
	before := countFDs()
	for range 20 {
		sighup(t, logs, `msg="config reloaded"`)
	}
	if after := countFDs(); after > before+2 {
		t.Errorf("open files went from %d to %d over 20 reloads", before, after)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}
