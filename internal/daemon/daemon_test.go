package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/store"

	"github.com/otpgate/otpgate/internal/testtool"
)

// syncBuffer is testtool.Buffer: safe for a writer goroutine and the test.
type syncBuffer = testtool.Buffer

const testSecret = "daemon-test-secret-0123456789abcdef"

func writeTestConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`version = 1
data_dir = "data"
[log]
level = "debug"
audit = "audit.log"
[radius]
listen = ["127.0.0.1:%d"]
acct_listen = ["127.0.0.1:0"]
[password]
argon2_time = 1
argon2_memory_kib = 1024
[metrics]
listen = "127.0.0.1:%d"
[[client]]
name = "lo"
address = "127.0.0.1"
secret = %q
%s`, testtool.FreePort(t, "udp"), testtool.FreePort(t, "tcp"), testSecret, extra)
	p := filepath.Join(dir, "radiusd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeTestConfig(t, dir, "")
	var logs syncBuffer
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: level}))
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunWithOptions(ctx, Options{ConfigPath: cfgPath, Log: log, Level: level, Version: "test", Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run ended during start: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("not ready after 20 s:\n%s", logs.String())
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level = %v, want debug from the config", level.Level())
	}
	sock := filepath.Join(dir, "data", "control.sock")
	c, err := control.DialClient(sock)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Version != "test" || st.PID != os.Getpid() {
		t.Errorf("Status = %+v, %v", st, err)
	}
	// The control socket runs the real admin service on the real store.
	if _, err := c.ShowUser(ctx, "nobody-here"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("ShowUser(unknown) = %v, want store.ErrUserNotFound", err)
	}
	c.Close()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	checkScrape(t, scrape(t, cfg.Metrics.Listen))
	if fi, err := os.Stat(filepath.Join(dir, "audit.log")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log file: %v, %v; want mode 0600", fi, err)
	}

	// SIGHUP reloads: add a client and switch the level.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(mustRead(t, cfgPath), `level = "debug"`, `level = "info"`, 1)+
		"[[client]]\nname = \"two\"\naddress = \"127.0.0.2\"\nsecret = \"second-client-secret-0123456789\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &logs, `msg="config reloaded"`)
	if !strings.Contains(logs.String(), `client \"two\" added`) || !strings.Contains(logs.String(), "log.level: debug -> info") {
		t.Errorf("reload did not log its changes:\n%s", logs.String())
	}
	if level.Level() != slog.LevelInfo {
		t.Errorf("log level after reload = %v, want info", level.Level())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15 s of cancel")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left after shutdown: %v", err)
	}
	if _, err := control.Dial(sock); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("Dial after shutdown = %v, want ErrNotRunning", err)
	}
	// The store was closed: it opens again at once.
	db, err := store.Open(filepath.Join(dir, "data", "otpgate.db"), store.Options{LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("store not released after shutdown: %v", err)
	}
	db.Close()
	if strings.Contains(logs.String(), testSecret) {
		t.Error("logs contain the shared secret")
	}
}

func TestRunStartErrors(t *testing.T) {
	dir := t.TempDir()
	if err := RunWithOptions(context.Background(), Options{ConfigPath: filepath.Join(dir, "missing.toml")}); err == nil {
		t.Error("Run with a missing config succeeded")
	}
	cfgPath := writeTestConfig(t, dir, "")
	// Occupy the metrics port: the start fails and leaves nothing behind.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Metrics.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = RunWithOptions(context.Background(), Options{ConfigPath: cfgPath})
	if err == nil || !strings.Contains(err.Error(), "metrics: listen "+cfg.Metrics.Listen) {
		t.Errorf("Run with the metrics port taken = %v", err)
	}
	if _, err := os.Lstat(cfg.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed start left a socket: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the log after 10 s:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMainCheckAndFlags(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeTestConfig(t, dir, "")
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"-check", "-config", cfgPath}, 0, "OK (1 clients", ""},
		{[]string{"-version"}, 0, "otpgated v9", ""},
		{[]string{"-nope"}, 2, "", "Usage: otpgated"},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"-check", "-config", filepath.Join(dir, "nope.toml")}, 1, "", "no such file"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := Main(context.Background(), "v9", tt.args, &out, &errb)
		if code != tt.wantCode || !strings.Contains(out.String(), tt.wantStdout) || !strings.Contains(errb.String(), tt.wantStderr) {
			t.Errorf("Main(%q) = %d\nstdout %q (want %q)\nstderr %q (want %q)", tt.args, code, out.String(), tt.wantStdout, errb.String(), tt.wantStderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-check created the data dir: %v", err)
	}
}

func TestDiffConfig(t *testing.T) {
	load := func(extra string) *config.Config {
		path := filepath.Join(t.TempDir(), "x.toml")
		if err := os.WriteFile(path, []byte("version = 1\n"+extra), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := load(`[radius]
listen = ["127.0.0.1:1812"]
[[client]]
name = "a"
address = "10.0.0.1"
secret = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
[[client]]
name = "b"
address = "10.0.0.2"
secret = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
`)
	next := load(`[radius]
listen = ["127.0.0.1:1813"]
[auth]
mfa = "optional"
mfa_groups = ["vpn"]
[[client]]
name = "a"
address = "10.0.0.1"
secret = "cccccccccccccccccccccccccccccccc"
mode = "challenge"
[[client]]
name = "c"
address = "10.0.0.3"
secret = "dddddddddddddddddddddddddddddddd"
`)
	applied, restart := diffConfig(old, next)
	got := strings.Join(applied, "\n")
	for _, want := range []string{`client "a": secret changed`, `client "a": mode auto -> challenge`, `client "c" added (10.0.0.3, mode auto)`,
		`client "b" removed`, "auth.mfa: required -> optional", `auth.mfa_groups: [] -> ["vpn"]`} {
		if !strings.Contains(got, want) {
			t.Errorf("applied changes lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cccc") || strings.Contains(got, "aaaa") {
		t.Errorf("diff shows a secret:\n%s", got)
	}
	if len(restart) != 1 || !strings.HasPrefix(restart[0], "radius.listen:") {
		t.Errorf("restart = %q, want only radius.listen", restart)
	}
	if a, r := diffConfig(old, old); len(a)+len(r) != 0 {
		t.Errorf("diff of a config with itself = %q %q", a, r)
	}

	// Keys read only at the start: a reload reports them as needing a
	// restart, the store's by name alone (a DSN may hold a password).
	dir := t.TempDir()
	dsnFile := func(name, dsn string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(dsn+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pgA, pgB := dsnFile("a.dsn", "postgres://otpgate:pw-in-file-a@db1/otpgate"), dsnFile("b.dsn", "postgres://otpgate:pw-in-file-b@db1/otpgate")
	web := "[web]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n"
	restartTests := []struct {
		name, old, next string
		want            string // the one restart entry
	}{
		{"web.listen", web, strings.Replace(web, "127.0.0.1:8080\"\npublic", "127.0.0.1:8081\"\npublic", 1), "web.listen: 127.0.0.1:8080 -> 127.0.0.1:8081"},
		{"web.public_url", web, strings.Replace(web, "http://127.0.0.1:8080", "http://localhost:8080", 1), "web.public_url: http://127.0.0.1:8080 -> http://localhost:8080"},
		{"web.tls_cert", web + "tls_cert = \"/etc/a.crt\"\ntls_key = \"/etc/a.key\"\n", web + "tls_cert = \"/etc/b.crt\"\ntls_key = \"/etc/a.key\"\n", "web.tls_cert: /etc/a.crt -> /etc/b.crt"},
		{"web.tls_key", web + "tls_cert = \"/etc/a.crt\"\ntls_key = \"/etc/a.key\"\n", web + "tls_cert = \"/etc/a.crt\"\ntls_key = \"/etc/b.key\"\n", "web.tls_key: /etc/a.key -> /etc/b.key"},
		{"control.enroll_socket", "[control]\nenroll_socket = \"/run/a.sock\"\n", "[control]\nenroll_socket = \"/run/b.sock\"\n", "control.enroll_socket: /run/a.sock -> /run/b.sock"},
		{"store.backend", "[store]\ndsn = \"postgres://otpgate@db1/otpgate\"\n", "[store]\nbackend = \"postgres\"\ndsn = \"postgres://otpgate@db1/otpgate\"\n", "store.backend: bbolt -> postgres"},
		{"store.dsn", "[store]\nbackend = \"postgres\"\ndsn = \"postgres://otpgate@db1/otpgate\"\n", "[store]\nbackend = \"postgres\"\ndsn = \"postgres://otpgate@db2/otpgate\"\n", "store.dsn (changed)"},
		{"store.dsn_file", "[store]\nbackend = \"postgres\"\ndsn_file = \"" + pgA + "\"\n", "[store]\nbackend = \"postgres\"\ndsn_file = \"" + pgB + "\"\n", "store.dsn_file (changed)"},
	}
	for _, tt := range restartTests {
		t.Run(tt.name, func(t *testing.T) {
			applied, restart := diffConfig(load(tt.old), load(tt.next))
			if len(applied) != 0 || len(restart) != 1 || restart[0] != tt.want {
				t.Errorf("diff = applied %q, restart %q; want restart [%q]", applied, restart, tt.want)
			}
			if got := strings.Join(restart, "\n"); strings.Contains(got, "db1") || strings.Contains(got, "db2") || strings.Contains(got, "pw-in-file") {
				t.Errorf("restart shows a DSN: %q", restart)
			}
		})
	}
	// A dsn_file whose contents changed, the path kept.
	oldFile := load("[store]\nbackend = \"postgres\"\ndsn_file = \"" + pgA + "\"\n")
	dsnFile("a.dsn", "postgres://otpgate:pw-in-file-c@db2/otpgate")
	newFile := load("[store]\nbackend = \"postgres\"\ndsn_file = \"" + pgA + "\"\n")
	if _, restart := diffConfig(oldFile, newFile); len(restart) != 1 || restart[0] != "store.dsn_file (contents changed)" {
		t.Errorf("restart after the dsn_file changed = %q, want [\"store.dsn_file (contents changed)\"]", restart)
	}
}

// TestMainStartFailureSaysSo: a daemon that never started says so, with
// the config path, and exits 1.
func TestMainStartFailureSaysSo(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeTestConfig(t, dir, "")
	// data_dir is a regular file: the store cannot be created.
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), "v", []string{"-config", cfgPath}, &out, &errb)
	if code != 1 {
		t.Errorf("exit = %d; want 1", code)
	}
	if !strings.Contains(errb.String(), `msg="otpgated could not start"`) || !strings.Contains(errb.String(), "store: open") {
		t.Errorf("stderr = %q; want a start failure naming the store", errb.String())
	}
	if _, err := os.Lstat(filepath.Join(dir, "data", "control.sock")); !errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after a failed start: %v", err)
	}
}
