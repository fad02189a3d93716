package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/enroll/recovery"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// cliEnv is a radiusd.toml and data directory for the otpgate CLI.
type cliEnv struct {
	t      *testing.T
	dir    string
	config string
}

// newCLIEnv writes a config whose data_dir is a fresh temporary directory.
// extra is appended to the TOML (e.g. [radius] and [[client]] sections).
func newCLIEnv(t *testing.T, extra string) *cliEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "radiusd.toml")
	text := "version = 1\ndata_dir = \"data\"\nissuer = \"E2E VPN\"\n\n" +
		"[password]\nargon2_time = 1\nargon2_memory_kib = 1024\n\n" + extra
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cliEnv{t: t, dir: dir, config: cfg}
}

func (e *cliEnv) dbPath() string  { return filepath.Join(e.dir, "data", "otpgate.db") }
func (e *cliEnv) keyPath() string { return filepath.Join(e.dir, "data", "seed.key") }

// otpgate runs the CLI with stdin and a time limit; it returns the exit
// code, stdout and stderr.
func (e *cliEnv) otpgate(stdin string, args ...string) (int, string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("otpgate"), append([]string{"-config", e.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		e.t.Fatalf("otpgate %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

func (e *cliEnv) mustOtpgate(stdin string, args ...string) string {
	e.t.Helper()
	code, out, errs := e.otpgate(stdin, args...)
	if code != 0 {
		e.t.Fatalf("otpgate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// storeUser reads a user straight from the database (no daemon may run).
func (e *cliEnv) storeUser(name string) store.User {
	e.t.Helper()
	st, err := store.Open(e.dbPath(), store.Options{KeyFile: e.keyPath()})
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	u, err := st.Get(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// assertNoSeedInClear fails if the database file holds a secret raw, in
// base32 (either case) or in hex.
func (e *cliEnv) assertNoSeedInClear(secrets ...[]byte) {
	e.t.Helper()
	db, err := os.ReadFile(e.dbPath())
	if err != nil {
		e.t.Fatal(err)
	}
	for i, s := range secrets {
		b32 := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(s)
		for _, form := range [][]byte{s, []byte(b32), []byte(strings.ToLower(b32)), []byte(hex.EncodeToString(s))} {
			if bytes.Contains(db, form) {
				e.t.Errorf("the database file holds seed %d in clear", i)
			}
		}
	}
}

// tmuxSession is a command running in a detached tmux session: a real
// terminal for prompts without echo.
type tmuxSession struct {
	t    *testing.T
	tmux string
	sock string
}

func startTmux(t *testing.T, command string) *tmuxSession {
	t.Helper()
	s := &tmuxSession{t: t, tmux: requireTool(t, "tmux"), sock: filepath.Join(t.TempDir(), "tmux.sock")}
	// The shell keeps the pane open after the command so its output and
	// exit status can be read.
	s.run("-u", "new-session", "-d", "-s", "cli", "-x", "160", "-y", "120",
		command+"; echo EXIT=$?; sleep 600")
	t.Cleanup(func() { _ = exec.Command(s.tmux, "-S", s.sock, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string {
	return s.run("capture-pane", "-p", "-J", "-t", "cli", "-S", "-1000")
}

// waitFor polls the screen until re matches (at least n times) and returns
// the screen.
func (s *tmuxSession) waitFor(re *regexp.Regexp, n int) string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		scr := s.screen()
		if len(re.FindAllString(scr, -1)) >= n {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %q on the screen:\n%s", re, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeLine types text and Enter.
func (s *tmuxSession) typeLine(text string) {
	s.t.Helper()
	s.run("send-keys", "-t", "cli", "-l", text)
	s.run("send-keys", "-t", "cli", "Enter")
}

func shellQuote(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func oathtoolCode(t *testing.T, b32 string) string {
	t.Helper()
	out, err := exec.Command(requireTool(t, "oathtool"), "--totp", "-b", b32).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

var (
	keyLineRe      = regexp.MustCompile(`Key:\s+((?:[A-Z2-7]{1,4} ?)+)`)
	codePromptRe   = regexp.MustCompile(`Enter the 6-digit code from your app:`)
	recoveryCodeRe = regexp.MustCompile(`(?m)^\s+[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}\s*$`)
	exitRe         = regexp.MustCompile(`EXIT=(\d+)`)
)

// TestCLIEnrollInTerminal enrolls in a real terminal: the secret is read off
// the screen, the code comes from oathtool, one wrong code goes first.
func TestCLIEnrollInTerminal(t *testing.T) {
	requireTool(t, "oathtool")
	e := newCLIEnv(t, "")
	e.mustOtpgate("", "user", "add", "alice", "--no-password")

	s := startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "enroll", "alice"))
	scr := s.waitFor(codePromptRe, 1)
	m := keyLineRe.FindStringSubmatch(scr)
	if m == nil {
		t.Fatalf("no secret on the screen:\n%s", scr)
	}
	b32 := strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "")
	if !regexp.MustCompile(`Key:\s+[A-Z2-7]{4} [A-Z2-7]{4} `).MatchString(scr) {
		t.Errorf("the secret is not shown in groups of four:\n%s", m[0])
	}
	if !strings.Contains(scr, "▀") && !strings.Contains(scr, "█") && !strings.Contains(scr, "▄") {
		t.Errorf("no QR code on the screen:\n%s", scr)
	}

	wrong := "000000"
	if oathtoolCode(t, b32) == wrong {
		wrong = "111111"
	}
	s.typeLine(wrong)
	s.waitFor(regexp.MustCompile(`not right`), 1)
	s.waitFor(codePromptRe, 2)
	// The CLI does not hold the database while it waits for a person.
	if u := e.storeUser("alice"); u.TOTP != nil {
		t.Fatal("a token was stored before a right code")
	}
	s.typeLine(oathtoolCode(t, b32))
	scr = s.waitFor(exitRe, 1)
	if got := exitRe.FindStringSubmatch(scr)[1]; got != "0" {
		t.Fatalf("enroll exited %s:\n%s", got, scr)
	}
	t.Logf("screen after enrollment:\n%s", strings.TrimRight(scr, "\n"))
	if !strings.Contains(scr, "Code accepted") || len(recoveryCodeRe.FindAllString(scr, -1)) != 10 {
		t.Errorf("no acceptance and 10 recovery codes on the screen:\n%s", scr)
	}

	u := e.storeUser("alice")
	secret, err := enroll.DecodeSecret(b32)
	if err != nil {
		t.Fatal(err)
	}
	if u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, secret) || len(u.RecoveryCodes) != 10 {
		t.Fatalf("stored token does not match the screen (totp %v, %d recovery codes)", u.TOTP != nil, len(u.RecoveryCodes))
	}
	e.assertNoSeedInClear(secret)

	// Ctrl-C during a forced re-enrollment: the old token stays.
	s = startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "enroll", "alice", "--force"))
	s.waitFor(codePromptRe, 1)
	s.run("send-keys", "-t", "cli", "C-c")
	scr = s.waitFor(exitRe, 1)
	if exitRe.FindStringSubmatch(scr)[1] != "1" || !strings.Contains(scr, "interrupted; the new token was not activated") {
		t.Errorf("Ctrl-C during enroll:\n%s", scr)
	}
	if u := e.storeUser("alice"); u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, secret) {
		t.Error("an interrupted forced enroll changed the token")
	}
}

// TestCLIPasswordPrompt types passwords at the no-echo prompt: a mismatch
// changes nothing, a match stores a hash of what was typed.
func TestCLIPasswordPrompt(t *testing.T) {
	e := newCLIEnv(t, "")
	s := startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "user", "add", "bob", "--group", "vpn"))
	s.waitFor(regexp.MustCompile(`New password: `), 1)
	s.typeLine("first-Secret")
	s.waitFor(regexp.MustCompile(`Repeat password: `), 1)
	s.typeLine("second-Secret")
	scr := s.waitFor(exitRe, 1)
	if !strings.Contains(scr, "do not match") || exitRe.FindStringSubmatch(scr)[1] != "1" {
		t.Errorf("mismatched passwords:\n%s", scr)
	}
	if strings.Contains(scr, "Secret") {
		t.Errorf("the password was echoed:\n%s", scr)
	}
	if code, _, errs := e.otpgate("", "user", "show", "bob"); code != 1 || !strings.Contains(errs, `no user "bob"`) {
		t.Errorf("a mismatched prompt created the user: exit %d, %s", code, errs)
	}

	s = startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "user", "add", "bob", "--group", "vpn"))
	s.waitFor(regexp.MustCompile(`New password: `), 1)
	s.typeLine("correct horse")
	s.waitFor(regexp.MustCompile(`Repeat password: `), 1)
	s.typeLine("correct horse")
	scr = s.waitFor(exitRe, 1)
	if exitRe.FindStringSubmatch(scr)[1] != "0" || strings.Contains(scr, "horse") {
		t.Fatalf("matching passwords:\n%s", scr)
	}
	if ok, err := password.Verify(e.storeUser("bob").PasswordHash, "correct horse"); !ok || err != nil {
		t.Errorf("the typed password does not verify: %v, %v", ok, err)
	}

	// passwd at the prompt; Ctrl-C at the prompt restores the terminal and
	// changes nothing.
	s = startTmux(t, shellQuote(bin("otpgate"), "-config", e.config, "user", "passwd", "bob")+
		"; echo RC=$?; stty -a | grep -o -- '-\\?echo ' | head -1 | sed 's/^/TTY:/'")
	s.waitFor(regexp.MustCompile(`New password: `), 1)
	s.run("send-keys", "-t", "cli", "C-c")
	scr = s.waitFor(regexp.MustCompile(`TTY:\S*echo`), 1)
	if !strings.Contains(scr, "RC=1") || !strings.Contains(scr, "interrupted") {
		t.Errorf("Ctrl-C at the prompt:\n%s", scr)
	}
	if !strings.Contains(scr, "TTY:echo") {
		t.Errorf("the terminal was left without echo after Ctrl-C:\n%s", scr)
	}
	if ok, _ := password.Verify(e.storeUser("bob").PasswordHash, "correct horse"); !ok {
		t.Error("an interrupted passwd changed the password")
	}
}

// TestCLILockedDatabase: with the database held by another process whose
// control socket does not answer, the CLI says so within seconds; two CLIs
// at once both finish (one may wait for the other's lock).
func TestCLILockedDatabase(t *testing.T) {
	e := newCLIEnv(t, "")
	e.mustOtpgate("", "user", "add", "alice", "--no-password")

	var wg sync.WaitGroup
	type res struct {
		code     int
		out, err string
		took     time.Duration
	}
	results := make([]res, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c, o, er := e.otpgate("", "user", "add", fmt.Sprintf("parallel%d", i), "--no-password")
			results[i] = res{c, o, er, time.Since(start)}
		}()
	}
	wg.Wait()
	for i, r := range results {
		t.Logf("parallel add %d: exit %d after %v", i, r.code, r.took.Round(time.Millisecond))
		if r.code != 0 && !strings.Contains(r.err, "is locked by another process") {
			t.Errorf("parallel add %d: exit %d, stderr %q", i, r.code, r.err)
		}
		if r.took > 10*time.Second {
			t.Errorf("parallel add %d took %v", i, r.took)
		}
	}

	// Hold the lock like a daemon with a dead socket.
	st, err := store.Open(e.dbPath(), store.Options{KeyFile: e.keyPath()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, _, errs := e.otpgate("", "user", "list")
	took := time.Since(start)
	st.Close()
	if code != 1 || !strings.Contains(errs, "is locked by another process (otpgated?) but its control socket") {
		t.Errorf("locked database: exit %d, stderr %q", code, errs)
	}
	if took > 6*time.Second {
		t.Errorf("locked database took %v to report; want about 2s", took)
	}
	t.Logf("locked database reported after %v", took.Round(time.Millisecond))
}

// gaFile runs the real google-authenticator command to write a
// ~/.google_authenticator style file and returns its secret (base32) and
// scratch codes.
func gaFile(t *testing.T, path string) (string, []string) {
	t.Helper()
	ga := requireTool(t, "google-authenticator")
	out, err := exec.Command(ga, "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3", "-Q", "NONE", "-e", "5", "-q", "-s", path).CombinedOutput()
	if err != nil {
		t.Fatalf("google-authenticator: %v\n%s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var scratch []string
	for _, l := range lines[1:] {
		if regexp.MustCompile(`^\d{8}$`).MatchString(l) {
			scratch = append(scratch, l)
		}
	}
	if len(scratch) != 5 {
		t.Fatalf("google-authenticator wrote %d scratch codes, want 5", len(scratch))
	}
	return strings.TrimSpace(lines[0]), scratch
}

// TestCLIImportGoogleAuthenticator imports files written by the real
// google-authenticator command; the stored seed yields oathtool's code and
// the scratch codes become recovery codes.
func TestCLIImportGoogleAuthenticator(t *testing.T) {
	requireTool(t, "oathtool")
	e := newCLIEnv(t, "")
	dir := t.TempDir()

	dot := filepath.Join(dir, ".google_authenticator")
	b32, scratch := gaFile(t, dot)
	code, _, errs := e.otpgate("", "import", dot, "--format", "google-authenticator")
	if code != 2 || !strings.Contains(errs, "--user") {
		t.Errorf("import of .google_authenticator without --user: exit %d, %s", code, errs)
	}
	e.mustOtpgate("", "import", dot, "--format", "google-authenticator", "--user", "carol")

	named := filepath.Join(dir, "dave")
	b32Dave, _ := gaFile(t, named)
	e.mustOtpgate("", "import", named, "--format", "google-authenticator")

	code, _, errs = e.otpgate("", "import", dot, "--format", "google-authenticator", "--user", "carol")
	if code != 1 || !strings.Contains(errs, "nothing was imported") {
		t.Errorf("second import of carol: exit %d, %s", code, errs)
	}

	st, err := store.Open(e.dbPath(), store.Options{KeyFile: e.keyPath()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct{ user, b32 string }{{"carol", b32}, {"dave", b32Dave}} {
		u, err := st.Get(context.Background(), c.user)
		if err != nil {
			t.Fatal(err)
		}
		if u.TOTP == nil {
			t.Fatalf("%s has no token after import", c.user)
		}
		// oathtool and the stored seed must agree on the current code
		// (retry once across a step boundary).
		for try := 0; ; try++ {
			want := oathtoolCode(t, c.b32)
			got, err := totp.Default.CodeAt(u.TOTP.Secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got == want {
				break
			}
			if try == 1 {
				t.Errorf("%s: the stored seed gives %s, oathtool gives %s", c.user, got, want)
				break
			}
		}
		secret, err := enroll.DecodeSecret(c.b32)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(secret, u.TOTP.Secret) {
			t.Errorf("%s: stored seed differs from the file's", c.user)
		}
	}
	carol, _ := st.Get(context.Background(), "carol")
	if len(carol.RecoveryCodes) != len(scratch) {
		t.Errorf("carol has %d recovery codes, want %d scratch codes", len(carol.RecoveryCodes), len(scratch))
	}
	for _, sc := range scratch {
		n, ok := recovery.Normalize(sc)
		if !ok || !slices.Contains(carol.RecoveryCodes, st.HashRecoveryCode("carol", n)) {
			t.Errorf("a scratch code is not a stored recovery code")
		}
		if slices.Contains(carol.RecoveryCodes, sc) {
			t.Errorf("a scratch code is stored in clear")
		}
	}
	st.Close()
	s1, _ := enroll.DecodeSecret(b32)
	s2, _ := enroll.DecodeSecret(b32Dave)
	e.assertNoSeedInClear(s1, s2)
}

// TestCLIImport100k imports 100,000 OTP-only users from CSV through the
// binary, once on the store directly and once through a running otpgated,
// and logs how long it took (a figure for the report, not a timed
// assertion). Skipped with -short.
func TestCLIImport100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 100_000
	var csv bytes.Buffer
	csv.WriteString("name,password,totp_secret,groups\n")
	var sample [][]byte
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for i := range n {
		secret := make([]byte, 20)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		if i%10_000 == 0 {
			sample = append(sample, secret)
		}
		fmt.Fprintf(&csv, "user%06d,,%s,vpn\n", i, enc.EncodeToString(secret))
	}
	file := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(file, csv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, e *cliEnv) {
		st, err := store.Open(e.dbPath(), store.Options{KeyFile: e.keyPath()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		users, err := st.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != n {
			t.Errorf("%d users stored, want %d", len(users), n)
		}
		u, err := st.Get(context.Background(), "user010000")
		if err != nil || u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, sample[1]) {
			t.Errorf("user010000 stored without its seed: %v", err)
		}
		st.Close()
		e.assertNoSeedInClear(sample...)
	}
	t.Run("store", func(t *testing.T) {
		e := newCLIEnv(t, "")
		start := time.Now()
		out := e.mustOtpgate("", "import", file, "--format", "csv")
		t.Logf("no daemon: imported %d OTP-only users (%d KiB CSV) in %v: %s", n, csv.Len()/1024, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		check(t, e)
	})
	t.Run("daemon", func(t *testing.T) {
		d := startDaemon(t, "", "")
		e := &cliEnv{t: t, dir: d.Dir, config: d.Config}
		start := time.Now()
		out := e.mustOtpgate("", "import", file, "--format", "csv")
		t.Logf("through otpgated: imported %d OTP-only users in %v: %s", n, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
		d.Stop()
		check(t, e)
	})
}

// radLogin sends one PAP Access-Request with radclient to a startDaemon
// daemon and returns the reply code ("Access-Accept", ...; "" for none).
func radLogin(t *testing.T, d *Daemon, user, pw string) string {
	t.Helper()
	return radclientSend(t, d.Addr, d.Secret, userPassword(user, pw)...).code
}

// TestCLIWithDaemon runs the CLI while otpgated owns the database: every
// command goes through the control socket (a direct open would wait 2 s for
// the lock and fail), and what it stores is what the daemon authenticates.
// Then the daemon stops and the same CLI works on the store directly.
func TestCLIWithDaemon(t *testing.T) {
	requireTool(t, "oathtool")
	requireTool(t, "radclient")
	d := startDaemon(t, "", "")
	e := &cliEnv{t: t, dir: d.Dir, config: d.Config}

	e.mustOtpgate("", "user", "list")
	if n := controlRequests(d, "GET", "/v1/users"); n != 1 {
		t.Errorf("user list with the daemon up: the daemon logged %d GET /v1/users, want 1: not through the socket?", n)
	}
	b32 := enrollViaCLI(t, e, "alice", "alice-pw")

	// Two CLIs at once, both through the socket.
	adds := controlRequests(d, "POST", "/v1/users")
	var wg sync.WaitGroup
	errs := make([]string, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, stderr := e.otpgate(fmt.Sprintf("pw-%d\n", i), "user", "add", fmt.Sprintf("par%d", i), "--password-stdin")
			if code != 0 {
				errs[i] = fmt.Sprintf("exit %d: %s", code, stderr)
			}
		}()
	}
	wg.Wait()
	for i, msg := range errs {
		if msg != "" {
			t.Errorf("parallel add %d through the socket: %s", i, msg)
		}
	}
	if n := controlRequests(d, "POST", "/v1/users") - adds; n != 2 {
		t.Errorf("two parallel adds: the daemon logged %d POST /v1/users, want 2", n)
	}

	code, out, stderr := e.otpgate("", "enroll", "alice")
	if code != 1 || out != "" || !strings.Contains(stderr, "otpgate enroll alice --force") {
		t.Errorf("second enroll with the daemon up: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = e.otpgate("", "user", "show", "nobody")
	if code != 1 || !strings.Contains(stderr, `no user "nobody"; add it with: otpgate user add nobody`) {
		t.Errorf("unknown user through the socket: exit %d, %q", code, stderr)
	}

	aliceCode := oathtoolCode(t, b32)
	logged := metricValue(t, d, "otpgate_store_log_appends_total")
	if got := radLogin(t, d, "alice", "alice-pw"+aliceCode); got != "Access-Accept" {
		t.Errorf("radclient login with the enrolled token: %q, want Access-Accept\n%s", got, d.Output())
	}
	if now := metricValue(t, d, "otpgate_store_log_appends_total"); now != logged+1 {
		t.Errorf("login log appends %v after the Accept, %v before; want one more (its used time step)", now, logged)
	}
	if got := radLogin(t, d, "alice", "alice-pw"+aliceCode); got != "Access-Reject" {
		t.Errorf("radclient replay of the same code: %q, want Access-Reject", got)
	}
	if show := e.mustOtpgate("", "user", "show", "alice"); !regexp.MustCompile(`last accepted code: +at `).MatchString(show) {
		t.Errorf("user show after a login does not tell when the last code was accepted:\n%s", show)
	}

	// A real google-authenticator file, imported through the socket; the
	// daemon accepts oathtool's code for it.
	gaPath := filepath.Join(t.TempDir(), "carol")
	gaB32, _ := gaFile(t, gaPath)
	e.mustOtpgate("", "import", gaPath, "--format", "google-authenticator")
	e.mustOtpgate("carol-pw\n", "user", "passwd", "carol", "--password-stdin")
	if got := radLogin(t, d, "carol", "carol-pw"+oathtoolCode(t, gaB32)); got != "Access-Accept" {
		t.Errorf("radclient login with the imported token: %q, want Access-Accept\n%s", got, d.Output())
	}

	backup := filepath.Join(t.TempDir(), "otpgate-backup.db")
	e.mustOtpgate("", "backup", backup)
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup: %v, mode %v", err, fi.Mode().Perm())
	}

	d.Stop()
	// Without the daemon: the store directly, same data.
	list := e.mustOtpgate("", "user", "list")
	for _, name := range []string{"alice", "carol", "par0", "par1"} {
		if !strings.Contains(list, name) {
			t.Errorf("user list without the daemon lacks %s:\n%s", name, list)
		}
	}
	aliceSecret, _ := enroll.DecodeSecret(b32)
	carolSecret, _ := enroll.DecodeSecret(gaB32)
	e.assertNoSeedInClear(aliceSecret, carolSecret)

	st, err := store.Open(backup, store.Options{KeyFile: e.keyPath()})
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer st.Close()
	u, err := st.Get(context.Background(), "carol")
	if err != nil || u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, carolSecret) {
		t.Errorf("the backup lacks carol's token: %v", err)
	}
}

// TestCLIEnrollScripted is the scripted two-step enrollment against a
// running otpgated, with no terminal: `otpgate enroll bob --json` prints
// the pending secret, oathtool computes a code from it, `otpgate enroll bob
// --code CODE --json` activates the token and prints the recovery codes.
// radclient then shows that the enrollment code is used up (a replay is
// refused as code_reused) while a later step's code and a recovery code log
// in.
func TestCLIEnrollScripted(t *testing.T) {
	requireTool(t, "oathtool")
	requireTool(t, "radclient")
	d := startDaemon(t, "", "")
	e := &cliEnv{t: t, dir: d.Dir, config: d.Config}
	e.mustOtpgate("bob-pw\n", "user", "add", "bob", "--password-stdin")
	e.mustOtpgate("carol-pw\n", "user", "add", "carol", "--password-stdin")

	// Text first step without a terminal (standard input ends at once):
	// QR code and key, then how to finish; exit 0.
	out := e.mustOtpgate("", "enroll", "carol")
	for _, want := range []string{"Scan this QR code", "Can't scan it?", "Key:", "otpauth://totp/otpgate-e2e:carol?secret=",
		"The enrollment of carol is pending", "otpgate enroll carol --code CODE"} {
		if !strings.Contains(out, want) {
			t.Errorf("first step for carol lacks %q:\n%s", want, out)
		}
	}

	// JSON first step for bob.
	out = e.mustOtpgate("", "enroll", "bob", "--json")
	var begun struct {
		User    string `json:"user"`
		URI     string `json:"uri"`
		Secret  string `json:"secret"`
		Pending bool   `json:"pending"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&begun); err != nil {
		t.Fatalf("enroll bob --json: %v\n%s", err, out)
	}
	if begun.User != "bob" || !begun.Pending || begun.Secret == "" ||
		!strings.HasPrefix(begun.URI, "otpauth://totp/otpgate-e2e:bob?secret="+begun.Secret+"&") {
		t.Fatalf("enroll bob --json = %+v", begun)
	}
	var info struct {
		Enrolled      bool `json:"enrolled"`
		PendingEnroll bool `json:"pending_enroll"`
	}
	if err := json.Unmarshal([]byte(e.mustOtpgate("", "user", "show", "bob", "--json")), &info); err != nil || info.Enrolled || !info.PendingEnroll {
		t.Fatalf("user show bob after the first step: %+v, %v", info, err)
	}

	// Second step with oathtool's code for the printed secret.
	waitStepStart()
	enrollCode := oathtoolCode(t, begun.Secret)
	out = e.mustOtpgate("", "enroll", "bob", "--code", enrollCode, "--json")
	var done struct {
		User          string   `json:"user"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	dec = json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&done); err != nil || done.User != "bob" || len(done.RecoveryCodes) != 10 {
		t.Fatalf("enroll bob --code --json: %+v, %v\n%s", done, err, out)
	}
	if err := json.Unmarshal([]byte(e.mustOtpgate("", "user", "show", "bob", "--json")), &info); err != nil || !info.Enrolled || info.PendingEnroll {
		t.Fatalf("user show bob after the second step: %+v, %v", info, err)
	}
	code, _, stderr := e.otpgate("", "enroll", "bob", "--code", enrollCode)
	if code != 1 || !strings.Contains(stderr, "no enrollment in progress for bob; start one with: otpgate enroll bob") {
		t.Errorf("a second --code: exit %d, stderr %q", code, stderr)
	}

	// The enrollment code is used up.
	if got := radLogin(t, d, "bob", "bob-pw"+enrollCode); got != "Access-Reject" {
		t.Errorf("radclient login with the enrollment code: %q, want Access-Reject", got)
	}
	if !regexp.MustCompile(`user"?[=:]"?bob"?.*reason"?[=:]"?code_reused`).MatchString(d.Output()) {
		t.Errorf("the audit log does not show the enrollment code refused as code_reused:\n%s", d.Output())
	}
	// The next step's code (within the skew of one step) logs in.
	if got := radLogin(t, d, "bob", "bob-pw"+oathCode(t, begun.Secret, 30*time.Second)); got != "Access-Accept" {
		t.Errorf("radclient login with the next step's code: %q, want Access-Accept\n%s", got, d.Output())
	}
	// So does a recovery code the second step printed.
	if got := radLogin(t, d, "bob", "bob-pw"+done.RecoveryCodes[0]); got != "Access-Accept" {
		t.Errorf("radclient login with a recovery code: %q, want Access-Accept\n%s", got, d.Output())
	}
}

// controlRequests counts the requests for method and path that d's control
// socket answered with success: proof a CLI command went through the daemon,
// which holds the store's lock, rather than opening the store itself.
func controlRequests(d *Daemon, method, path string) int {
	re := regexp.MustCompile(`(?m)msg="control request" component=control method=` + method + ` path=` + regexp.QuoteMeta(path) + ` uid=\d+ status=2\d\d$`)
	return len(re.FindAllString(d.Output(), -1))
}
