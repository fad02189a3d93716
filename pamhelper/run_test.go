package pamhelper

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/internal/testtool"
)

const (
	testSecret   = "pam-test-secret"
	testPassword = "correct horse7" // with a space: nothing may trim it
	testCode     = "123456"
)

// syncBuffer collects log output from the helper and the fake servers.
type syncBuffer = testtool.Buffer

type runEnv struct {
	servers []string
	timeout time.Duration
	retries int
	env     []string
	stdin   string
}

// runHelper writes a pam.toml for the servers and runs the helper.
func runHelper(t *testing.T, e runEnv) (int, string) {
	t.Helper()
	if e.timeout == 0 {
		e.timeout = 300 * time.Millisecond
	}
	quoted := make([]string, len(e.servers))
	for i, s := range e.servers {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	cfg := fmt.Sprintf("servers = [%s]\nsecret = %q\ntimeout = %q\nretries = %d\nnas_identifier = \"test-host\"\n",
		strings.Join(quoted, ", "), testSecret, e.timeout, e.retries)
	p := writeFile(t, t.TempDir(), "pam.toml", cfg, 0o600)
	if e.env == nil {
		e.env = []string{"PAM_TYPE=auth", "PAM_USER=alice", "PAM_RHOST=192.0.2.7", "PAM_SERVICE=sshd"}
	}
	var logs syncBuffer
	code := Run(context.Background(), Options{
		Args:  []string{"-config", p},
		Env:   e.env,
		Stdin: strings.NewReader(e.stdin),
		Euid:  os.Geteuid(),
		Log:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	out := logs.String()
	if strings.Contains(out, testPassword) || strings.Contains(out, testCode) || strings.Contains(out, testSecret) {
		t.Errorf("the log contains the password, code or secret:\n%s", out)
	}
	return code, out
}

func TestRunAnswers(t *testing.T) {
	tests := []struct {
		name     string
		answer   behaviour
		wantExit int
		wantLog  string
	}{
		{"accept", answerWith(radius.CodeAccessAccept, respondOpts{}), ExitAccept, "accepted"},
		{"reject", answerWith(radius.CodeAccessReject, respondOpts{}), ExitReject, "rejected"},
		{"challenge is a failure", answerWith(radius.CodeAccessChallenge, respondOpts{extra: func(p *radius.Packet) {
			rfc2865.State_SetString(p, "state")
			rfc2865.ReplyMessage_SetString(p, "Code: ")
		}}), ExitReject, "server asked for a challenge; give this client mode append or otp-only"},
		// Answers that do not verify are discarded; with no valid answer the helper fails closed.
		{"bad response authenticator", answerWith(radius.CodeAccessAccept, respondOpts{badAuth: true}), ExitError, "bad Response Authenticator"},
		{"missing Message-Authenticator", answerWith(radius.CodeAccessAccept, respondOpts{noMA: true}), ExitError, "no Message-Authenticator"},
		{"bad Message-Authenticator", answerWith(radius.CodeAccessAccept, respondOpts{badMA: true}), ExitError, "bad Message-Authenticator"},
		{"wrong identifier", answerWith(radius.CodeAccessAccept, respondOpts{wrongID: true}), ExitError, "identifier"},
		{"signed with another secret", answerWith(radius.CodeAccessAccept, respondOpts{secret: []byte("other")}), ExitError, "bad Response Authenticator"},
		{"unexpected code", answerWith(radius.CodeAccountingResponse, respondOpts{}), ExitError, "unexpected code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFakeServer(t, testSecret, tt.answer)
			code, logs := runHelper(t, runEnv{servers: []string{srv.addr}, timeout: 200 * time.Millisecond, stdin: testPassword + testCode})
			if code != tt.wantExit {
				t.Errorf("exit = %d; want %d\nlog:\n%s", code, tt.wantExit, logs)
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.users) == 0 {
				t.Fatal("the server got no valid request")
			}
			if srv.users[0] != "alice" || srv.passes[0] != testPassword+testCode || srv.nasIDs[0] != "test-host" || srv.stations[0] != "192.0.2.7" {
				t.Errorf("request had User-Name %q, %d-byte password, NAS-Identifier %q, Calling-Station-Id %q",
					srv.users[0], len(srv.passes[0]), srv.nasIDs[0], srv.stations[0])
			}
		})
	}
}

// TestRunInputs covers the environment and stdin contract; none of these
// must reach the server.
func TestRunInputs(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		stdin    string
		wantExit int
		wantLog  string
	}{
		{"NUL-terminated authtok is accepted", []string{"PAM_TYPE=auth", "PAM_USER=alice"}, testPassword + testCode + "\x00", ExitAccept, "accepted"},
		{"empty authtok", []string{"PAM_TYPE=auth", "PAM_USER=alice"}, "", ExitReject, "empty authtok"},
		{"authtok over the stdin bound", []string{"PAM_TYPE=auth", "PAM_USER=alice"}, strings.Repeat("a", MaxAuthtok+1), ExitReject, "longer than 512"},
		{"authtok at the stdin bound is still too long for RADIUS", []string{"PAM_TYPE=auth", "PAM_USER=alice"}, strings.Repeat("a", MaxAuthtok), ExitReject, "longer than RADIUS"},
		{"authtok of 129 bytes", []string{"PAM_TYPE=auth", "PAM_USER=alice"}, strings.Repeat("a", 129), ExitReject, "longer than RADIUS"},
		{"PAM_TYPE account", []string{"PAM_TYPE=account", "PAM_USER=alice"}, testPassword, ExitError, "only handles PAM_TYPE=auth"},
		{"PAM_TYPE missing", []string{"PAM_USER=alice"}, testPassword, ExitError, "only handles PAM_TYPE=auth"},
		{"PAM_USER missing", []string{"PAM_TYPE=auth"}, testPassword, ExitError, "PAM_USER"},
		{"PAM_USER with a newline", []string{"PAM_TYPE=auth", "PAM_USER=al\nice"}, testPassword, ExitError, "PAM_USER"},
		{"PAM_USER set twice", []string{"PAM_TYPE=auth", "PAM_USER=mallory", "PAM_USER=alice"}, testPassword, ExitError, "set twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, testSecret, answerWith(radius.CodeAccessAccept, respondOpts{}))
			code, logs := runHelper(t, runEnv{servers: []string{srv.addr}, env: tt.env, stdin: tt.stdin})
			if code != tt.wantExit {
				t.Errorf("exit = %d; want %d\nlog:\n%s", code, tt.wantExit, logs)
			}
			if !strings.Contains(logs, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs)
			}
			if n := len(srv.received()); tt.wantExit != ExitAccept && n != 0 {
				t.Errorf("the server got %d packets; want none", n)
			}
		})
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		body string
		mode uint32
	}{
		{"world-readable", nil, "servers = [\"127.0.0.1:1\"]\nsecret = \"x\"\n", 0o644},
		{"unknown key", nil, "servers = [\"127.0.0.1:1\"]\nsecret = \"x\"\nport = 1\n", 0o600},
		{"missing secret", nil, "servers = [\"127.0.0.1:1\"]\n", 0o600},
		{"no servers", nil, "secret = \"x\"\n", 0o600},
		{"stray argument", []string{"extra"}, "servers = [\"127.0.0.1:1\"]\nsecret = \"x\"\n", 0o600},
		{"unknown flag", []string{"-debug"}, "servers = [\"127.0.0.1:1\"]\nsecret = \"x\"\n", 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "pam.toml", tt.body, 0o600)
			if err := os.Chmod(p, os.FileMode(tt.mode)); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			code := Run(context.Background(), Options{
				Args:  append([]string{"-config", p}, tt.args...),
				Env:   []string{"PAM_TYPE=auth", "PAM_USER=alice"},
				Stdin: strings.NewReader(testPassword),
				Euid:  os.Geteuid(),
				Log:   slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if code != ExitError {
				t.Errorf("exit = %d; want %d\nlog:\n%s", code, ExitError, logs.String())
			}
		})
	}
}

func TestRetransmitSendsIdenticalBytes(t *testing.T) {
	// The server ignores the first transmission and answers the second.
	srv := newFakeServer(t, testSecret, func(t *testing.T, req *radius.Packet, n int) []byte {
		if n == 1 {
			return nil
		}
		return respond(t, req, radius.CodeAccessAccept, respondOpts{})
	})
	code, logs := runHelper(t, runEnv{servers: []string{srv.addr}, timeout: 150 * time.Millisecond, retries: 2, stdin: testPassword + testCode})
	if code != ExitAccept {
		t.Fatalf("exit = %d; want 0\n%s", code, logs)
	}
	got := srv.received()
	if len(got) != 2 {
		t.Fatalf("server got %d packets; want 2", len(got))
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Errorf("the retransmission differs from the first packet:\n%x\n%x", got[0], got[1])
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name  string
		first func(t *testing.T) (addr string, count func() int)
	}{
		{"first port closed", func(t *testing.T) (string, func() int) { return deadAddr(t), func() int { return 0 } }},
		{"first server silent", func(t *testing.T) (string, func() int) {
			s := newFakeServer(t, testSecret, silent)
			return s.addr, func() int { return len(s.received()) }
		}},
		{"first server answers with the wrong secret", func(t *testing.T) (string, func() int) {
			s := newFakeServer(t, testSecret, answerWith(radius.CodeAccessAccept, respondOpts{secret: []byte("wrong")}))
			return s.addr, func() int { return len(s.received()) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, count := tt.first(t)
			second := newFakeServer(t, testSecret, answerWith(radius.CodeAccessAccept, respondOpts{}))
			code, logs := runHelper(t, runEnv{servers: []string{first, second.addr}, timeout: 150 * time.Millisecond, retries: 1, stdin: testPassword + testCode})
			if code != ExitAccept {
				t.Fatalf("exit = %d; want 0\n%s", code, logs)
			}
			if n := count(); n != 0 && n != 2 {
				t.Errorf("first server got %d packets; want retries+1 = 2", n)
			}
			if n := len(second.received()); n != 1 {
				t.Errorf("second server got %d packets; want 1", n)
			}
		})
	}
}

func TestAllServersDead(t *testing.T) {
	const timeout, retries = 200 * time.Millisecond, 1
	a := newFakeServer(t, testSecret, silent)
	b := newFakeServer(t, testSecret, silent)
	start := time.Now()
	code, logs := runHelper(t, runEnv{servers: []string{a.addr, b.addr, deadAddr(t)}, timeout: timeout, retries: retries, stdin: testPassword + testCode})
	elapsed := time.Since(start)
	if code != ExitError {
		t.Fatalf("exit = %d; want %d\n%s", code, ExitError, logs)
	}
	if !strings.Contains(logs, "no otpgated server answered; failing closed") {
		t.Errorf("log lacks the failing-closed line:\n%s", logs)
	}
	bound := timeout * (retries + 1) * 3
	if elapsed > bound+300*time.Millisecond {
		t.Errorf("took %s; want at most timeout*(retries+1)*servers = %s", elapsed, bound)
	}
	if min := timeout * (retries + 1) * 2; elapsed < min {
		t.Errorf("took %s; the two silent servers alone should take %s", elapsed, min)
	}
	pa, pb := a.received(), b.received()
	if len(pa) != retries+1 || len(pb) != retries+1 {
		t.Fatalf("servers got %d and %d packets; want %d each", len(pa), len(pb), retries+1)
	}
	// Failover uses a new Identifier and Request Authenticator.
	if bytes.Equal(pa[0][:20], pb[0][:20]) {
		t.Error("the second server got the same Identifier and Request Authenticator as the first")
	}
}

func TestVersionAndHelpFlags(t *testing.T) {
	missing := "/nonexistent/pam.toml" // -version and -h never read the config
	tests := []struct {
		name       string
		args       []string
		env        []string
		version    string
		wantExit   int
		wantStdout string
		wantStderr []string // substrings
		wantLog    string
	}{
		{name: "version", args: []string{"-version"}, version: "1.2.3", wantExit: ExitAccept, wantStdout: "otpgate-pam 1.2.3\n"},
		{name: "version unset", args: []string{"-version"}, wantExit: ExitAccept, wantStdout: "otpgate-pam dev\n"},
		{name: "version with config", args: []string{"-config", missing, "-version"}, version: "v9", wantExit: ExitAccept, wantStdout: "otpgate-pam v9\n"},
		{name: "version under pam_exec fails closed", args: []string{"-version"}, env: []string{"PAM_TYPE=auth", "PAM_USER=alice"},
			version: "1.2.3", wantExit: ExitError, wantLog: "failing closed"},
		{name: "version under pam_exec with empty PAM_TYPE", args: []string{"-version"}, env: []string{"PAM_TYPE="}, wantExit: ExitError, wantLog: "failing closed"},
		{name: "help", args: []string{"-h"}, wantExit: ExitError, wantStderr: []string{"usage: otpgate-pam", "-config", "-version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var logs syncBuffer
			code := Run(context.Background(), Options{
				Args:    tt.args,
				Env:     tt.env,
				Stdin:   strings.NewReader(testPassword),
				Euid:    os.Geteuid(),
				Log:     slog.New(slog.NewTextHandler(&logs, nil)),
				Version: tt.version,
				Stdout:  &stdout,
				Stderr:  &stderr,
			})
			if code != tt.wantExit {
				t.Errorf("exit = %d; want %d\nlog:\n%s", code, tt.wantExit, logs.String())
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q; want %q", stdout.String(), tt.wantStdout)
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
		})
	}
}
