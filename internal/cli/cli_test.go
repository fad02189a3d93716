package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// env is a config and data directory in t.TempDir(); no daemon runs, so
// every command opens the store directly.
type env struct {
	t      *testing.T
	dir    string
	config string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "radiusd.toml")
	// Cheap argon2id: these tests are about the CLI, not hashing cost.
	text := "version = 1\ndata_dir = \"data\"\nissuer = \"Test VPN\"\n\n[password]\nargon2_time = 1\nargon2_memory_kib = 1024\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: dir, config: cfg}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs otpgate -config <env> args with stdin.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"-config", e.config}, args...)
	code := Run(context.Background(), full, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// must runs a command that must succeed.
func (e *env) must(stdin string, args ...string) result {
	e.t.Helper()
	r := e.run(stdin, args...)
	if r.code != 0 {
		e.t.Fatalf("otpgate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// open opens the env's store (no otpgate may be running).
func (e *env) open() *store.DB {
	e.t.Helper()
	st, err := store.Open(filepath.Join(e.dir, "data", "otpgate.db"), store.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) user(name string) store.User {
	e.t.Helper()
	st := e.open()
	defer st.Close()
	u, err := st.Get(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func TestUsageErrors(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // in stderr
	}{
		{"no command", "", nil, "no command given"},
		{"unknown command", "", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"user without subcommand", "", []string{"user"}, "missing subcommand"},
		{"unknown user subcommand", "", []string{"user", "frob"}, `unknown command "user frob"`},
		{"unknown global flag", "", []string{"-verbose", "user", "list"}, "flag provided but not defined"},
		{"add without name", "", []string{"user", "add"}, "missing argument"},
		{"add with two names", "", []string{"user", "add", "a", "b", "--no-password"}, `unexpected argument "b"`},
		{"add with unknown flag", "", []string{"user", "add", "carol", "--admin"}, "flag provided but not defined: -admin"},
		{"add invalid name", "", []string{"user", "add", "bad name", "--no-password"}, `invalid user name "bad name"`},
		{"add name like a flag", "", []string{"user", "add", "--no-password", "--", "-rf"}, `invalid user name "-rf"`},
		{"add without terminal or flag", "", []string{"user", "add", "carol"}, "not a terminal"},
		{"add stdin and no-password", "pw\n", []string{"user", "add", "carol", "--password-stdin", "--no-password"}, "exclude each other"},
		{"add bad group", "", []string{"user", "add", "carol", "--no-password", "--group", "a b"}, "invalid group name"},
		{"passwd without terminal", "", []string{"user", "passwd", "alice"}, "not a terminal"},
		{"passwd stdin and clear", "", []string{"user", "passwd", "alice", "--clear", "--password-stdin"}, "exclude each other"},
		{"list with argument", "", []string{"user", "list", "alice"}, `unexpected argument "alice"`},
		{"show without name", "", []string{"user", "show"}, "missing argument"},
		{"groups clear with groups", "", []string{"user", "groups", "alice", "--clear", "vpn"}, "--clear takes no groups"},
		{"delete without name", "", []string{"user", "delete"}, "missing argument"},
		{"enroll own with code", "", []string{"enroll", "--code", "123456"}, "--code needs a NAME"},
		{"enroll own with force", "", []string{"enroll", "--force"}, "--force needs a NAME"},
		{"enroll link without name", "", []string{"enroll", "--link"}, "missing NAME (or --all-pending)"},
		{"enroll all pending with name", "", []string{"enroll", "alice", "--link", "--all-pending"}, "--all-pending takes no NAME"},
		{"enroll link with png", "", []string{"enroll", "alice", "--link", "--png", "x.png"}, "--png does not go with --link"},
		{"enroll invalid name", "", []string{"enroll", "a/b"}, "invalid user name"},
		{"reset extra arg", "", []string{"reset", "alice", "bob"}, "unexpected argument"},
		{"import without format", "", []string{"import", "users.csv"}, "--format is required"},
		{"import unknown format", "", []string{"import", "users.csv", "--format", "xml"}, `unknown --format "xml"`},
		{"import dot file without user", "", []string{"import", "/home/alice/.google_authenticator", "--format", "google-authenticator"}, `".google_authenticator" is not a user name; pass the user with --user NAME`},
		{"import stdin ga without user", "", []string{"import", "-", "--format", "google-authenticator"}, "needs --user"},
		{"import csv with user", "", []string{"import", "u.csv", "--format", "csv", "--user", "x"}, "--user applies only"},
		{"backup without file", "", []string{"backup"}, "missing argument"},
		{"help for unknown", "", []string{"help", "nope"}, `no help for "nope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.stdin, tc.args...)
			if r.code != ExitUsage {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, ExitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("a usage error printed to stdout: %q", r.stdout)
			}
		})
	}
	if got := len(e.mustList()); got != 1 {
		t.Errorf("usage errors changed the user list: %d users, want 1", got)
	}
}

func (e *env) mustList() []admin.UserInfo {
	e.t.Helper()
	var users []admin.UserInfo
	if err := json.Unmarshal([]byte(e.must("", "user", "list", "--json").stdout), &users); err != nil {
		e.t.Fatal(err)
	}
	return users
}

func TestHelp(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := e.run("", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Commands:") || !strings.Contains(r.stdout, "user add") {
			t.Errorf("otpgate %v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	for _, args := range [][]string{{"user", "--help"}, {"help", "user"}} {
		r := e.run("", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "user passwd") {
			t.Errorf("otpgate %v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	for _, c := range newCommands() {
		words := strings.Fields(c.name)
		for _, args := range [][]string{append(words, "--help"), append([]string{"help"}, words...), append(words, "-h")} {
			r := e.run("", args...)
			if c.rawArgs { // bench: its own usage, once (TestBenchHelpOnce)
				if r.code != 0 || !strings.Contains(r.stdout, "usage: otpgate "+c.name) || r.stderr != "" {
					t.Errorf("otpgate %v: exit %d\nstdout %q\nstderr %q", args, r.code, r.stdout, r.stderr)
				}
				continue
			}
			if r.code != 0 || !strings.Contains(r.stdout, "Usage:\n  otpgate "+c.name) || r.stderr != "" {
				t.Errorf("otpgate %v: exit %d\nstdout %q\nstderr %q", args, r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, "--config PATH") {
				t.Errorf("otpgate %v: help lists no flags", args)
			}
		}
	}
}

func TestUnknownUser(t *testing.T) {
	e := newEnv(t)
	want := `otpgate: no user "bob"; add it with: otpgate user add bob` + "\n"
	for _, args := range [][]string{
		{"user", "show", "bob"},
		{"user", "show", "bob", "--json"},
		{"user", "passwd", "bob", "--password-stdin"},
		{"user", "passwd", "bob", "--clear"},
		{"user", "disable", "bob"},
		{"user", "enable", "bob"},
		{"user", "delete", "bob"},
		{"user", "unlock", "bob"},
		{"user", "groups", "bob"},
		{"user", "groups", "bob", "vpn"},
		{"enroll", "bob"},
		{"enroll", "bob", "--code", "123456"},
		{"reset", "bob"},
		{"recovery-codes", "bob"},
	} {
		r := e.run("pw\n", args...)
		if r.code != ExitFailure || r.stderr != want || r.stdout != "" {
			t.Errorf("otpgate %v: exit %d\nstdout %q\nstderr %q\nwant stderr %q", args, r.code, r.stdout, r.stderr, want)
		}
	}
}

func TestUserLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.must("s3cret pw\n", "user", "add", "alice", "--group", "vpn", "--password-stdin", "--group=ops,vpn")
	if !strings.Contains(r.stdout, "otpgate enroll alice") {
		t.Errorf("add does not say what to do next: %q", r.stdout)
	}
	u := e.user("alice")
	if ok, _ := password.Verify(u.PasswordHash, "s3cret pw"); !ok {
		t.Error("the password from stdin does not verify (only the newline may be trimmed)")
	}
	// Flags before the name work too; CRLF is a line ending.
	e.must(" spaced \r\n", "user", "add", "--password-stdin", "bob")
	if ok, _ := password.Verify(e.user("bob").PasswordHash, " spaced "); !ok {
		t.Error("spaces around a stdin password must be kept")
	}
	e.must("", "user", "add", "carol", "--no-password")
	if e.user("carol").PasswordHash != "" {
		t.Error("--no-password user has a password")
	}

	r = e.run("", "user", "add", "alice", "--no-password")
	if r.code != ExitFailure || !strings.Contains(r.stderr, `user "alice" already exists; see it with: otpgate user show alice`) {
		t.Errorf("duplicate add: exit %d, stderr %q", r.code, r.stderr)
	}
	// A taken name fails before any password is asked for.
	r = e.run("", "user", "add", "alice")
	if r.code != ExitFailure || !strings.Contains(r.stderr, `user "alice" already exists`) {
		t.Errorf("duplicate add without a password source: exit %d, stderr %q", r.code, r.stderr)
	}
	r = e.run("\n", "user", "add", "dave", "--password-stdin")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no password") {
		t.Errorf("empty stdin password: exit %d, stderr %q", r.code, r.stderr)
	}

	users := e.mustList()
	if len(users) != 3 || users[0].Name != "alice" || strings.Join(users[0].Groups, ",") != "vpn,ops" || !users[0].HasPassword {
		t.Fatalf("user list --json = %+v", users)
	}
	table := e.must("", "user", "list").stdout
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^NAME +GROUPS +ENROLLED +LOCKED +DISABLED +LAST SUCCESS +PASSWORD$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^alice +vpn,ops +no +no +no +never +local$`).MatchString(lines[1]) {
		t.Errorf("user list table:\n%s", table)
	}
	if i := strings.Index(lines[0], "GROUPS"); i < 0 || !strings.HasPrefix(lines[3][i:], "-") {
		t.Errorf("columns are not aligned:\n%s", table)
	}

	e.must("", "user", "disable", "alice")
	if !e.user("alice").Disabled {
		t.Error("disable did not disable")
	}
	if show := e.must("", "user", "show", "alice").stdout; !strings.Contains(show, "DISABLED") {
		t.Errorf("show of a disabled user:\n%s", show)
	}
	e.must("", "user", "enable", "alice")
	if e.user("alice").Disabled {
		t.Error("enable did not enable")
	}

	e.must("", "user", "groups", "alice", "admins", "vpn")
	if g := e.must("", "user", "groups", "alice").stdout; g != "admins\nvpn\n" {
		t.Errorf("groups = %q", g)
	}
	e.must("", "user", "groups", "alice", "--clear")
	if g := e.user("alice").Groups; len(g) != 0 {
		t.Errorf("groups after --clear = %q", g)
	}

	e.must("other pw\n", "user", "passwd", "alice", "--password-stdin")
	if ok, _ := password.Verify(e.user("alice").PasswordHash, "other pw"); !ok {
		t.Error("passwd did not change the password")
	}
	e.must("", "user", "passwd", "alice", "--clear")
	if e.user("alice").PasswordHash != "" {
		t.Error("passwd --clear kept the password")
	}

	// Lockout shows in list and show, and unlock clears it.
	st := e.open()
	until := time.Now().Add(time.Hour)
	err := st.Update(context.Background(), "alice", func(u *store.User) error {
		u.CodeFailures, u.LockedUntil, u.LastFailure = 6, until, time.Now()
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if table := e.must("", "user", "list").stdout; !strings.Contains(table, "until ") {
		t.Errorf("list does not show the lock:\n%s", table)
	}
	show := e.must("", "user", "show", "alice").stdout
	for _, want := range []string{"code failures:", "6 (last at", "locked until:", "otpgate user unlock alice", "not enrolled", "none (OTP-only)"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	e.must("", "user", "unlock", "alice")
	if u := e.user("alice"); u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("after unlock: %d failures, locked until %v", u.CodeFailures, u.LockedUntil)
	}

	e.must("", "user", "delete", "bob")
	if users := e.mustList(); len(users) != 2 {
		t.Errorf("%d users after delete, want 2", len(users))
	}
}

// enrollSession runs `otpgate enroll args...` with piped stdin and stdout,
// reads the secret off the output and answers with the given codes (a func
// of the secret). It returns the exit code and all output.
func (e *env) enrollSession(answer func(secret []byte) []string, args ...string) result {
	e.t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		code := Run(context.Background(), append([]string{"-config", e.config, "enroll"}, args...), inR, outW, &errb)
		outW.Close()
		done <- code
	}()
	var all strings.Builder
	sc := bufio.NewScanner(outR)
	sc.Split(scanPrompt)
	var secret []byte
	var codes []string
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line)
		if m := regexp.MustCompile(`Key:\s+([A-Z2-7 ]+)`).FindStringSubmatch(line); m != nil {
			s, err := enroll.DecodeSecret(m[1])
			if err != nil {
				e.t.Errorf("secret on screen %q: %v", m[1], err)
			}
			secret = s
			codes = answer(secret)
		}
		if strings.Contains(line, "Enter the 6-digit code") {
			if len(codes) == 0 {
				inW.Close()
				continue
			}
			c := codes[0]
			codes = codes[1:]
			go io.WriteString(inW, c+"\n")
		}
	}
	code := <-done
	inW.Close()
	return result{code, all.String(), errb.String()}
}

// scanPrompt splits at newlines and after a prompt that ends in ": ".
func scanPrompt(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if bytes.HasSuffix(data, []byte("app: ")) {
		return len(data), data, nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func codeNow(t *testing.T, secret []byte) string {
	c, err := totp.Default.CodeAt(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrollResetRecovery(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")

	r := e.run("", "recovery-codes", "alice")
	if r.code != ExitFailure || !strings.Contains(r.stderr, `user "alice" has no token; enroll one with: otpgate enroll alice`) {
		t.Errorf("recovery-codes before enroll: exit %d, stderr %q", r.code, r.stderr)
	}

	// One wrong code, then the right one.
	r = e.enrollSession(func(s []byte) []string { return []string{"000000", codeNow(t, s)} }, "alice")
	if r.code != 0 {
		t.Fatalf("enroll: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"not right", "Code accepted", "Recovery codes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("enroll output lacks %q:\n%s", want, r.stdout)
		}
	}
	codeRe := regexp.MustCompile(`(?m)^  ([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})$`)
	if n := len(codeRe.FindAllString(r.stdout, -1)); n != admin.RecoveryCodeCount {
		t.Errorf("%d recovery codes shown, want %d", n, admin.RecoveryCodeCount)
	}
	first := e.user("alice").TOTP
	if first == nil {
		t.Fatal("no token after enroll")
	}

	// Already enrolled: refused before any QR code is shown.
	r = e.run("", "enroll", "alice")
	if r.code != ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, "otpgate enroll alice --force") {
		t.Errorf("second enroll: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
	}
	// --force with only wrong codes: the old token stays.
	r = e.enrollSession(func([]byte) []string { return []string{"000000", "111111", "222222"} }, "alice", "--force")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "wrong code") {
		t.Errorf("forced enroll with wrong codes: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := e.user("alice").TOTP; got == nil || !bytes.Equal(got.Secret, first.Secret) {
		t.Fatal("a failed forced enroll changed the token")
	}
	// Input (not a terminal) ends before a code: the enrollment stays
	// pending, exit 0, and the active token is unchanged.
	r = e.enrollSession(func([]byte) []string { return nil }, "alice", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "otpgate enroll alice --code CODE --force") {
		t.Errorf("enroll with closed input: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if u := e.user("alice"); !bytes.Equal(u.TOTP.Secret, first.Secret) || u.PendingTOTP == nil {
		t.Errorf("enroll with closed input: token changed or nothing pending (%v)", u.PendingTOTP != nil)
	}
	// --force with the right code replaces it.
	var second []byte
	r = e.enrollSession(func(s []byte) []string { second = s; return []string{codeNow(t, s)} }, "alice", "--force")
	if r.code != 0 {
		t.Fatalf("forced enroll: exit %d, stderr %q", r.code, r.stderr)
	}
	if got := e.user("alice").TOTP; got == nil || !bytes.Equal(got.Secret, second) || bytes.Equal(second, first.Secret) {
		t.Fatal("a forced enroll did not replace the token")
	}

	show := e.must("", "user", "show", "alice").stdout
	// The code typed to enroll is used up: it shows as the last accepted one.
	for _, want := range []string{"enrolled since", "last accepted code: +at ", "recovery codes left: +10"} {
		if !regexp.MustCompile(want).MatchString(show) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}

	r = e.must("", "recovery-codes", "alice")
	if n := len(codeRe.FindAllString(r.stdout, -1)); n != admin.RecoveryCodeCount {
		t.Errorf("recovery-codes printed %d codes:\n%s", n, r.stdout)
	}
	var codes []string
	if err := json.Unmarshal([]byte(e.must("", "recovery-codes", "alice", "--json").stdout), &codes); err != nil || len(codes) != admin.RecoveryCodeCount {
		t.Errorf("recovery-codes --json: %v, %d codes", err, len(codes))
	}

	e.must("", "reset", "alice")
	if u := e.user("alice"); u.TOTP != nil || len(u.RecoveryCodes) != 0 {
		t.Errorf("after reset: totp %v, %d recovery codes", u.TOTP, len(u.RecoveryCodes))
	}
	r = e.run("", "enroll", "alice", "--code", "123456")
	if r.code != ExitFailure || r.stderr != "otpgate: no enrollment in progress for alice; start one with: otpgate enroll alice\n" || e.user("alice").TOTP != nil {
		t.Errorf("enroll --code without a pending enrollment: exit %d, stderr %q", r.code, r.stderr)
	}
}

// startJSON runs the first step with --json and returns the pending secret.
func (e *env) startJSON(name string, extra ...string) []byte {
	e.t.Helper()
	r := e.must("", append([]string{"enroll", name, "--json"}, extra...)...)
	var got struct {
		User    string `json:"user"`
		URI     string `json:"uri"`
		Secret  string `json:"secret"`
		Pending bool   `json:"pending"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		e.t.Fatalf("enroll --json output %q: %v", r.stdout, err)
	}
	secret, err := enroll.DecodeSecret(got.Secret)
	if err != nil || got.User != name || !got.Pending || !strings.Contains(got.URI, "secret="+got.Secret) {
		e.t.Fatalf("enroll --json: %+v (%v)", got, err)
	}
	return secret
}

// TestEnrollTwoStep is the scripted enrollment: the first step shows the
// pending secret and exits, the second activates it with --code.
func TestEnrollTwoStep(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")

	// Text first step without a terminal: QR code, key, how to finish.
	r := e.must("", "enroll", "alice")
	for _, want := range []string{"Scan this QR code", "Can't scan it?", "Key:", "otpauth://", "The enrollment of alice is pending",
		"  otpgate enroll alice --code CODE\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("first step output lacks %q:\n%s", want, r.stdout)
		}
	}
	if u := e.user("alice"); u.PendingTOTP == nil || u.TOTP != nil {
		t.Fatalf("after the first step: pending %v, active %v", u.PendingTOTP != nil, u.TOTP != nil)
	}
	if show := e.must("", "user", "show", "alice").stdout; !strings.Contains(show, "enrollment: ") || !strings.Contains(show, "pending (finish with: otpgate enroll alice --code CODE") {
		t.Errorf("user show lacks the pending enrollment:\n%s", show)
	}

	// JSON first step replaces the pending secret.
	secret := e.startJSON("alice")
	if u := e.user("alice"); !bytes.Equal(u.PendingTOTP.Secret, secret) {
		t.Fatal("the secret printed is not the pending one")
	}
	r = e.run("", "enroll", "alice", "--code", "000000", "--png", filepath.Join(t.TempDir(), "x.png"))
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--png belongs to the first step") {
		t.Errorf("--png with --code: exit %d, %q", r.code, r.stderr)
	}

	wrong := "000000"
	if _, ok, _ := totp.Default.Match(secret, wrong, time.Now(), 2); ok {
		wrong = "999999"
	}
	r = e.run("", "enroll", "alice", "--code", wrong)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "wrong code (4 more tries") || !strings.Contains(r.stderr, "run again with a new code: otpgate enroll alice --code CODE") ||
		strings.Contains(r.stderr, wrong) {
		t.Errorf("wrong --code: exit %d, stderr %q", r.code, r.stderr)
	}
	code := codeNow(t, secret)
	r = e.must("", "enroll", "alice", "--code", code[:3]+" "+code[3:], "--json")
	var done struct {
		User          string   `json:"user"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&done); err != nil || done.User != "alice" || len(done.RecoveryCodes) != admin.RecoveryCodeCount {
		t.Fatalf("enroll --code --json: %+v, %v\n%s", done, err, r.stdout)
	}
	u := e.user("alice")
	step, _, _ := totp.Default.Match(secret, code, time.Now(), 1)
	if u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, secret) || u.PendingTOTP != nil || u.TOTP.LastStep != step {
		t.Fatalf("after the second step: active %v, pending %v, last step %v (want %d)", u.TOTP != nil, u.PendingTOTP != nil, u.TOTP.LastStep, step)
	}
	r = e.run("", "enroll", "alice", "--code", code)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no enrollment in progress for alice") {
		t.Errorf("second --code: exit %d, stderr %q", r.code, r.stderr)
	}

	// Replacing the active token takes --force on both steps.
	r = e.run("", "enroll", "alice", "--json")
	if r.code != ExitFailure || r.stdout != "" || !strings.Contains(r.stderr, "otpgate enroll alice --force") {
		t.Errorf("first step with an active token: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	second := e.startJSON("alice", "--force")
	r = e.run("", "enroll", "alice", "--code", codeNow(t, second))
	if r.code != ExitFailure || !strings.Contains(r.stderr, "otpgate enroll alice --code CODE --force") {
		t.Errorf("second step without --force: exit %d, stderr %q", r.code, r.stderr)
	}
	if u := e.user("alice"); !bytes.Equal(u.TOTP.Secret, secret) || u.PendingTOTP == nil || u.PendingTries != 0 {
		t.Fatal("a refused second step changed the token, dropped the pending one or counted a try")
	}
	// Five wrong codes discard the pending token; the old one stays.
	for i, n := 1, 0; i <= admin.MaxEnrollTries; n++ {
		c := fmt.Sprintf("%06d", 111111*(n%9+1))
		if _, ok, _ := totp.Default.Match(second, c, time.Now(), 2); ok {
			continue
		}
		r = e.run("", "enroll", "alice", "--force", "--code", c)
		if r.code != ExitFailure {
			t.Fatalf("wrong code %d accepted", i)
		}
		i++
	}
	if !strings.Contains(r.stderr, "too many wrong codes: the enrollment of alice was discarded") {
		t.Errorf("fifth wrong code: %q", r.stderr)
	}
	if u := e.user("alice"); !bytes.Equal(u.TOTP.Secret, secret) || u.PendingTOTP != nil {
		t.Fatal("discarding the enrollment changed the token or kept the pending one")
	}
	third := e.startJSON("alice", "--force")
	e.must("", "enroll", "alice", "--force", "--code", codeNow(t, third))
	if u := e.user("alice"); !bytes.Equal(u.TOTP.Secret, third) {
		t.Fatal("--force on both steps did not replace the token")
	}
}

func TestBackup(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	dst := filepath.Join(e.dir, "backup.db")
	// A stale, world-readable FILE.tmp must not widen the backup's mode:
	// the backup never uses it (see TestBackupIgnoresPlantedFiles).
	if err := os.WriteFile(dst+".tmp", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.must("", "backup", dst)
	if !strings.Contains(r.stdout, "seed.key") {
		t.Errorf("backup does not mention the key file: %q", r.stdout)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	if b, err := os.ReadFile(dst + ".tmp"); err != nil || string(b) != "stale" {
		t.Errorf("%s.tmp, not the backup's, was changed: %q, %v", dst, b, err)
	}
	st, err := store.Open(dst, store.Options{KeyFile: filepath.Join(e.dir, "data", "seed.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Get(context.Background(), "alice"); err != nil {
		t.Errorf("the backup lacks alice: %v", err)
	}

	r = e.run("", "backup", filepath.Join(e.dir, "no", "such", "dir", "b.db"))
	if r.code != ExitFailure || !strings.Contains(r.stderr, "backup:") {
		t.Errorf("backup into a missing directory: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDatabaseLocked(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	st := e.open() // holds the bbolt lock, like a daemon whose socket is dead
	defer st.Close()
	start := time.Now()
	r := e.run("", "user", "list")
	took := time.Since(start)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "is locked by another process (otpgated?) but its control socket") ||
		!strings.Contains(r.stderr, "systemctl status otpgated") {
		t.Errorf("locked database: exit %d, stderr %q", r.code, r.stderr)
	}
	if took > 5*time.Second {
		t.Errorf("took %v with the database locked; want about %v", took, storeLockTimeout)
	}
	t.Logf("locked database reported after %v", took.Round(time.Millisecond))
}

func TestConfigErrors(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"-config", filepath.Join(t.TempDir(), "missing.toml"), "user", "list"}, strings.NewReader(""), &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), "missing.toml") {
		t.Errorf("missing config: exit %d, stderr %q", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("version = 1\ndata_dri = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code = Run(context.Background(), []string{"-config", bad, "user", "list"}, strings.NewReader(""), &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), "data_dri") {
		t.Errorf("bad config: exit %d, stderr %q", code, errb.String())
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args      []string
		wantPos   []string
		wantGroup string
		wantB     bool
	}{
		{[]string{"alice", "--group", "vpn"}, []string{"alice"}, "vpn", false},
		{[]string{"--group=vpn", "alice", "-b"}, []string{"alice"}, "vpn", true},
		{[]string{"alice", "bob", "-b", "carol"}, []string{"alice", "bob", "carol"}, "", true},
		{[]string{"-b", "--", "-x", "--group"}, []string{"-x", "--group"}, "", true},
		{nil, nil, "", false},
	}
	for _, tc := range tests {
		var groups stringList
		var b bool
		fs := newTestFlagSet(&groups, &b)
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Join(pos, "|") != strings.Join(tc.wantPos, "|") || groups.String() != tc.wantGroup || b != tc.wantB {
			t.Errorf("%q: pos %q groups %q b %v; want %q %q %v", tc.args, pos, groups, b, tc.wantPos, tc.wantGroup, tc.wantB)
		}
	}
}

func newTestFlagSet(groups *stringList, b *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(groups, "group", "")
	fs.BoolVar(b, "b", false, "")
	return fs
}

func TestImportCSV(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "existing", "--no-password")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" // RFC 6238 SHA1 key
	good := write("good.csv", "name,password,totp_secret,groups\n"+
		"ann,plain pw,,vpn;ops\n"+
		"ben,,"+b32+",\n"+
		"\n"+
		"cid,,,\n")
	badLine := write("bad.csv", "name,password,totp_secret,groups\nx1,,,\nx2,,not-base32!,\n")
	dup := write("dup.csv", "x3,,,\nexisting,,,\n")

	tests := []struct {
		name      string
		stdin     string
		args      []string
		wantCode  int
		wantErr   string
		wantUsers int
	}{
		{"missing file", "", []string{"import", filepath.Join(dir, "nope.csv"), "--format", "csv"}, 1, "no such file", 1},
		{"bad line", "", []string{"import", badLine, "--format", "csv"}, 1, "line 3", 1},
		{"existing user", "", []string{"import", dup, "--format", "csv"}, 1, "nothing was imported", 1},
		{"empty file", "", []string{"import", "-", "--format", "csv"}, 1, "no users", 1},
		{"good", "", []string{"import", good, "--format", "csv"}, 0, "", 4},
		{"again", "", []string{"import", good, "--format", "csv"}, 1, `"ann"`, 4},
		{"stdin", "dee,,,\n", []string{"import", "-", "--format=csv"}, 0, "", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.stdin, tc.args...)
			if r.code != tc.wantCode || !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want %d, %q", r.code, r.stderr, tc.wantCode, tc.wantErr)
			}
			if n := len(e.mustList()); n != tc.wantUsers {
				t.Errorf("%d users after, want %d", n, tc.wantUsers)
			}
		})
	}
	ann := e.user("ann")
	if ok, _ := password.Verify(ann.PasswordHash, "plain pw"); !ok || strings.Join(ann.Groups, ",") != "vpn,ops" {
		t.Errorf("ann imported as groups %q, password ok %v", ann.Groups, ok)
	}
	ben := e.user("ben")
	if ben.TOTP == nil || string(ben.TOTP.Secret) != "12345678901234567890" || ben.PasswordHash != "" {
		t.Errorf("ben imported without the token or with a password")
	}
}

// TestThroughControlSocket runs the CLI against an in-process control
// server that holds the store (as otpgated does): every command must go
// through the socket, and sentinel errors must keep their advice.
func TestThroughControlSocket(t *testing.T) {
	e := newEnv(t)
	e.startControl()
	start := time.Now()
	e.must("pw\n", "user", "add", "alice", "--password-stdin", "--group", "vpn")
	if took := time.Since(start); took > storeLockTimeout {
		t.Errorf("add through the socket took %v: did it wait for the store lock?", took)
	}
	if r := e.run("", "user", "add", "alice", "--no-password"); r.code != 1 || !strings.Contains(r.stderr, "already exists; see it with") {
		t.Errorf("duplicate through the socket: exit %d, %q", r.code, r.stderr)
	}
	if r := e.run("", "user", "show", "bob"); r.code != 1 || r.stderr != "otpgate: no user \"bob\"; add it with: otpgate user add bob\n" {
		t.Errorf("unknown user through the socket: exit %d, %q", r.code, r.stderr)
	}
	r := e.enrollSession(func(s []byte) []string { return []string{codeNow(t, s)} }, "alice")
	if r.code != 0 || !strings.Contains(r.stdout, "Recovery codes") {
		t.Fatalf("enroll through the socket: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := e.run("", "enroll", "alice"); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "--force") {
		t.Errorf("second enroll through the socket: exit %d, %q", r.code, r.stderr)
	}
	// The scripted two steps through the socket.
	e.must("", "user", "add", "bob", "--no-password")
	bobSecret := e.startJSON("bob")
	if r := e.run("", "enroll", "bob", "--code", "12345"); r.code != 1 || !strings.Contains(r.stderr, "wrong code") {
		t.Errorf("malformed --code through the socket: exit %d, %q", r.code, r.stderr)
	}
	if r := e.must("", "enroll", "bob", "--code", codeNow(t, bobSecret)); !strings.Contains(r.stdout, "now active for bob") {
		t.Errorf("second step through the socket:\n%s", r.stdout)
	}
	if r := e.run("", "enroll", "bob", "--code", codeNow(t, bobSecret)); r.code != 1 || !strings.Contains(r.stderr, "no enrollment in progress for bob") {
		t.Errorf("--code again through the socket: exit %d, %q", r.code, r.stderr)
	}
	e.must("", "user", "delete", "bob")
	e.must("", "recovery-codes", "alice")
	csvFile := filepath.Join(t.TempDir(), "u.csv")
	if err := os.WriteFile(csvFile, []byte("ann,,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("", "import", csvFile, "--format", "csv")
	backup := filepath.Join(e.dir, "backup.db")
	e.must("", "backup", backup)
	e.must("", "reset", "alice")
	users := e.mustList()
	if len(users) != 2 || users[0].Name != "alice" || users[0].Enrolled || !users[1].Enrolled {
		t.Errorf("users through the socket: %+v", users)
	}

	// The backup taken while the server held the store is a whole database.
	b, err := store.Open(backup, store.Options{KeyFile: filepath.Join(e.dir, "data", "seed.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if u, err := b.Get(context.Background(), "alice"); err != nil || u.TOTP == nil {
		t.Errorf("backup: alice %v (token %v)", err, u.TOTP != nil)
	}
}

func TestConfigFlagAfterCommand(t *testing.T) {
	e := newEnv(t)
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"user", "add", "zoe", "--no-password", "-config", e.config}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	e.user("zoe")
}

// startControl serves the env's store on its control socket in process, as
// otpgated would, until the test ends.
func (e *env) startControl() {
	t := e.t
	t.Helper()
	st := e.open()
	svc := admin.NewLocal(st, password.Params{Time: 1, MemKiB: 1024, Threads: 1}, "Test VPN")
	srv := control.NewServer(svc, control.ServerOptions{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	sock := filepath.Join(e.dir, "data", "control.sock")
	ln, err := srv.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- srv.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
		st.Close()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := control.Dial(sock)
		if err == nil {
			c.(io.Closer).Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control server did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonStartsDuringEnroll: the CLI started without a daemon does not
// hold the database while it waits for the code; when otpgated starts
// meanwhile, the activation goes through its socket.
func TestDaemonStartsDuringEnroll(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	r := e.enrollSession(func(s []byte) []string {
		e.startControl() // fails if the CLI held the lock
		return []string{codeNow(t, s)}
	}, "alice")
	if r.code != 0 || !strings.Contains(r.stdout, "Code accepted") {
		t.Fatalf("enroll: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var info admin.UserInfo
	if err := json.Unmarshal([]byte(e.must("", "user", "show", "alice", "--json").stdout), &info); err != nil || !info.Enrolled || info.RecoveryLeft != 10 {
		t.Errorf("after enroll: %+v, %v", info, err)
	}
}

// TestNoPasswordUsersAreExplained: every way to get a user without a
// password (user add --no-password, user passwd --clear, CSV rows with an
// empty password, google-authenticator imports) says on the terminal that
// such a user logs in only through otp-only clients.
func TestNoPasswordUsersAreExplained(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const note = `only clients with mode = "otp-only" (the NAS checks the password) accept the code alone`
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string // in stderr; "" = no note
	}{
		{"add --no-password", "", []string{"user", "add", "otto", "--no-password"}, "note: otto has no password: " + note},
		{"add with password", "pw\n", []string{"user", "add", "pat", "--password-stdin"}, ""},
		{"passwd --clear", "", []string{"user", "passwd", "pat", "--clear"}, "note: pat has no password: " + note},
		{"google-authenticator", "", []string{"import", write("gail", "326HKGA43YQPSQ737HWDVVZYHI\n\" TOTP_AUTH\n12345678\n"), "--format", "google-authenticator"},
			"note: gail has no password: " + note},
		{"csv, some without", "", []string{"import", write("u.csv", "ann,pw,,\nben,,,\ncid,,,\n"), "--format", "csv"}, "note: 2 of them have no password: " + note},
		{"csv, all with", "", []string{"import", write("v.csv", "dee,pw,,\n"), "--format", "csv"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(tc.stdin, tc.args...)
			if tc.want == "" {
				if strings.Contains(r.stderr, "no password") {
					t.Errorf("a note for users with a password: %q", r.stderr)
				}
				return
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "otpgate user passwd") {
				t.Errorf("stderr %q lacks %q and how to set a password", r.stderr, tc.want)
			}
		})
	}
}
