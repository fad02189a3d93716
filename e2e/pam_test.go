package e2e

// End-to-end tests of the SSH-host side: pamtester drives real PAM stacks
// built from packaging/pam.d/ (pam_exec + otpgate-pam, and Debian's
// pam_radius_auth) against a real otpgated. Codes come from oathtool.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	pamSecretRadius = "e2e-pam-radius-secret-0123456789"  // pam_radius_auth's client, 127.0.0.2
	pamPlaceholder  = "change-me-to-a-long-random-secret" // the secret in packaging/pam.toml and pam_radius_auth.conf
)

// pamRadiusClient is the client entry for pam_radius_auth, which sends from
// 127.0.0.2 (source_ip in packaging/pam_radius_auth.conf) without a
// Message-Authenticator.
var pamRadiusClient = fmt.Sprintf(`[[client]]
name = "pam-radius-legacy"
address = "127.0.0.2/32"
secret = %q
mode = "challenge"
require_message_authenticator = false
`, pamSecretRadius)

// pamServer is an otpgated from startDaemon (RADIUS on 127.0.0.1, whose
// 127.0.0.1/32 client "localhost" has the secret Secret) and the otpgate CLI
// pointed at it.
type pamServer struct {
	*Daemon
	t *testing.T
}

// newPamServer starts otpgated with extraToml ([auth], more [[client]]s).
func newPamServer(t *testing.T, extraToml string) *pamServer {
	t.Helper()
	return &pamServer{Daemon: startDaemon(t, "", extraToml), t: t}
}

// otpgate runs the CLI against this server's config.
func (s *pamServer) otpgate(stdin string, args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("otpgate"), append([]string{"-config", s.Config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("otpgate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

var (
	pamKeyLineRe    = regexp.MustCompile(`Key:\s+((?:[A-Z2-7]{1,4} ?)+)`)
	pamCodePromptRe = regexp.MustCompile(`Enter the 6-digit code from your app:`)
)

// addUser creates an otpgate user with a password (empty: --no-password) and
// enrolls a token (enroll). It returns the base32 secret.
func (s *pamServer) addUser(name, password string) string {
	s.t.Helper()
	if password == "" {
		s.otpgate("", "user", "add", name, "--no-password")
	} else {
		s.otpgate(password+"\n", "user", "add", name, "--password-stdin")
	}
	return s.enroll(name)
}

// enroll enrolls a token for an existing user the way an admin does,
// `otpgate enroll NAME`, reading the secret off its output and answering its
// prompt with oathtool's code. It returns the base32 secret.
func (s *pamServer) enroll(name string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("otpgate"), "-config", s.Config, "enroll", name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !pamCodePromptRe.MatchString(out.String()) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			s.t.Fatalf("otpgate enroll %s: no code prompt:\n%s", name, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := pamKeyLineRe.FindStringSubmatch(out.String())
	if m == nil {
		s.t.Fatalf("otpgate enroll %s: no Key: line:\n%s", name, out.String())
	}
	b32 := strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "")
	fmt.Fprintln(stdin, totpAt(s.t, b32, time.Now()))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		s.t.Fatalf("otpgate enroll %s: %v\n%s", name, err, out.String())
	}
	return b32
}

// totpAt asks oathtool for the code of b32 at time at.
func totpAt(t *testing.T, b32 string, at time.Time) string {
	t.Helper()
	out, err := exec.Command(requireTool(t, "oathtool"), "--totp", "-b", "-N", "@"+strconv.FormatInt(at.Unix(), 10), b32).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// wrongCode returns a 6-digit code that is no valid code of b32 near now.
func wrongCode(t *testing.T, b32 string) string {
	t.Helper()
	bad := map[string]bool{}
	for d := -3; d <= 3; d++ {
		bad[totpAt(t, b32, time.Now().Add(time.Duration(d)*30*time.Second))] = true
	}
	for _, c := range []string{"000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777", "888888"} {
		if !bad[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// waitStepStart sleeps when the current 30-s step is about to end, so a
// code computed now stays valid for the few seconds a test needs.
func waitStepStart() {
	if rem := 30 - time.Now().Unix()%30; rem < 4 {
		time.Sleep(time.Duration(rem)*time.Second + 200*time.Millisecond)
	}
}

// randomName is a short unique suffix for users, PAM services and paths.
func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// readPackaging reads a file from packaging/: the tests use the snippets we
// ship, not copies of their own.
func readPackaging(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "packaging", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replaceOnce replaces old with new in s and fails the test if old is absent,
// so a changed packaging file cannot silently leave a test on defaults.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("packaging snippet lacks %q; update the test with it", old)
	}
	return strings.Replace(s, old, new, 1)
}

// pamHelperConfig writes packaging/pam.toml pointed at servers, mode 0600.
func pamHelperConfig(t *testing.T, secret string, servers ...string) string {
	t.Helper()
	cfg := readPackaging(t, "pam.toml")
	cfg = replaceOnce(t, cfg, `servers = ["127.0.0.1:1812"]`, `servers = ["`+strings.Join(servers, `", "`)+`"]`)
	cfg = replaceOnce(t, cfg, pamPlaceholder, secret)
	cfg = replaceOnce(t, cfg, `timeout = "3s"`, `timeout = "1s"`)
	cfg = replaceOnce(t, cfg, `retries = 2`, `retries = 1`)
	p := filepath.Join(t.TempDir(), "pam.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pamExecStack is packaging/pam.d/otpgate with the test's binary and config.
func pamExecStack(t *testing.T, helperConfig string) string {
	t.Helper()
	stack := readPackaging(t, "pam.d/otpgate")
	return replaceOnce(t, stack, "/usr/sbin/otpgate-pam", bin("otpgate-pam")+" -config "+helperConfig)
}

// pamRadiusStack is packaging/pam.d/otpgate-radius with its own
// pam_radius_auth.conf (from packaging/) pointed at server, with the
// sample line's 3 s timeout; pam_radius_auth sends from 127.0.0.2, the
// source_ip field of the sample line.
func pamRadiusStack(t *testing.T, server string) string {
	t.Helper()
	return pamRadiusStackServers(t, 3, server)
}

// pamRadiusStackServers is pamRadiusStack with one line per server in
// pam_radius_auth.conf, tried in order, timeout seconds each. It fails
// when the sample line changed (server, secret placeholder, timeout 3,
// source_ip 127.0.0.2).
func pamRadiusStackServers(t *testing.T, timeout int, servers ...string) string {
	t.Helper()
	conf := readPackaging(t, "pam_radius_auth.conf")
	var lines []string
	for _, s := range servers {
		lines = append(lines, fmt.Sprintf("%s   %s   %d   127.0.0.2", s, pamSecretRadius, timeout))
	}
	conf = replaceOnce(t, conf, "127.0.0.1:1812   "+pamPlaceholder+"   3   127.0.0.2", strings.Join(lines, "\n"))
	p := filepath.Join(t.TempDir(), "pam_radius_auth.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	stack := readPackaging(t, "pam.d/otpgate-radius")
	return replaceOnce(t, stack, "conf=/etc/pam_radius_auth.conf", "conf="+p)
}

// installPAMService writes /etc/pam.d/otpgate-test-<random> with the auth
// stack plus permissive account and session lines (those are not under
// test), and removes it in Cleanup. It returns the service name.
func installPAMService(t *testing.T, authStack string) string {
	t.Helper()
	name := randomName("otpgate-test-")
	p := filepath.Join("/etc/pam.d", name)
	text := "# written by otpgate's e2e tests; removed when they end\n" + authStack +
		"account required pam_permit.so\nsession required pam_permit.so\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p) })
	return name
}

// pamtester runs `pamtester SERVICE USER authenticate` and answers each
// prompt with the next of answers, writing an answer only after its prompt
// appeared (so a second prompt, pam_radius_auth's code prompt, gets the
// second answer). It returns whether authentication succeeded, the number of
// prompts seen and pamtester's output.
func pamtester(t *testing.T, service, user string, answers ...string) (bool, int, string) {
	t.Helper()
	return pamConverse(t, service, user, func(_ string, prompt int) (string, bool) {
		if prompt < len(answers) {
			return answers[prompt], true
		}
		return "", false // EOF: the conversation fails
	})
}

// pamConverse runs `pamtester SERVICE USER authenticate`: at each prompt
// (output on stderr that does not end in a newline: misc_conv prints it and
// waits for a line) it types what answer returns for the output so far and
// the prompt's number, or closes stdin when answer says no. It returns
// whether authentication succeeded, the number of prompts and the output.
func pamConverse(t *testing.T, service, user string, answer func(output string, prompt int) (string, bool)) (bool, int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, "pamtester"), "-v", service, user, "authenticate")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := &lockedBuffer{}
	cmd.Stdout = stdout
	stderr, err := cmd.StderrPipe() // the prompts come on stderr
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errOut := &lockedBuffer{}
	chunks := make(chan struct{}, 64)
	go func() {
		r := bufio.NewReader(stderr)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				errOut.Write(buf[:n])
				chunks <- struct{}{}
			}
			if err != nil {
				close(chunks)
				return
			}
		}
	}()
	prompts := 0
	seen := 0 // bytes of stderr already matched as prompts
	for open := true; open; {
		select {
		case _, ok := <-chunks:
			if !ok {
				open = false
				break
			}
			time.Sleep(50 * time.Millisecond) // let a prompt arrive whole
			s := errOut.String()
			if len(s) > seen && !strings.HasSuffix(s, "\n") {
				seen = len(s)
				if line, ok := answer(s, prompts); ok {
					io.WriteString(stdin, line+"\n")
				} else {
					stdin.Close()
				}
				prompts++
			}
		case <-ctx.Done():
			open = false
		}
	}
	stdin.Close()
	err = cmd.Wait()
	out := stderrAndStdout(errOut.String(), stdout.String())
	if ctx.Err() != nil {
		t.Fatalf("pamtester %s %s timed out:\n%s", service, user, out)
	}
	ok := err == nil && strings.Contains(stdout.String(), "successfully authenticated")
	return ok, prompts, out
}

func stderrAndStdout(e, o string) string { return "stderr: " + e + "\nstdout: " + o }

// TestHostPAMExec runs pam_exec + otpgate-pam (packaging/pam.d/otpgate)
// through pamtester against otpgated: the user types password and code at
// one prompt. It writes a PAM service into /etc/pam.d.
func TestHostPAMExec(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "pamtester")
	requireTool(t, "oathtool")

	// otpgate-pam sends from 127.0.0.1: the "localhost" client, in append mode.
	srv := newPamServer(t, "[auth]\nmode = \"append\"\n")
	const pw = "Tr0ub4dor&3 x" // a space, so nothing may split or trim it
	alice := randomName("alice")
	aliceKey := srv.addUser(alice, pw)
	carol := randomName("carol")
	carolKey := srv.addUser(carol, pw)
	srv.otpgate("", "user", "disable", carol)

	helperCfg := pamHelperConfig(t, srv.Secret, srv.Addr)
	service := installPAMService(t, pamExecStack(t, helperCfg))
	login := func(user, answer string) bool {
		t.Helper()
		ok, prompts, out := pamtester(t, service, user, answer)
		if prompts != 1 {
			t.Errorf("pamtester %s: %d prompts; want the one Password: prompt\n%s", user, prompts, out)
		}
		return ok
	}

	waitStepStart()
	// The enrollment used the current step; the next login uses the next
	// one (within skew 1), so it is neither the enrollment's code nor stale.
	code := totpAt(t, aliceKey, time.Now().Add(30*time.Second))

	steps := []struct {
		name       string
		user       string
		answer     string
		want       bool
		wantReason string // otpgated's audit reason
	}{
		{"wrong code", alice, pw + wrongCode(t, aliceKey), false, "bad_code"},
		{"wrong password", alice, "not" + pw + code, false, "bad_password"},
		{"code alone", alice, code, false, "bad_password"},
		{"unknown user", randomName("nobody"), pw + code, false, "unknown_user"},
		{"disabled user", carol, pw + totpAt(t, carolKey, time.Now().Add(30*time.Second)), false, "disabled"},
		{"right password and code", alice, pw + code, true, "ok"},
		{"replayed code", alice, pw + code, false, "code_reused"},
	}
	for _, st := range steps {
		if got := login(st.user, st.answer); got != st.want {
			t.Errorf("%s: authenticated = %v; want %v", st.name, got, st.want)
		}
		if got := auditReason(t, srv, st.user, st.wantReason); got != st.wantReason {
			t.Errorf("%s: otpgated's audit reason = %q; want %q", st.name, got, st.wantReason)
		}
	}

	// The helper's own exit codes against the real daemon (pam_exec maps
	// every non-zero code to PAM_SYSTEM_ERR, so only a direct run shows them).
	if code := runHelper(t, helperCfg, alice, pw+wrongCode(t, aliceKey)); code != 1 {
		t.Errorf("otpgate-pam with a wrong code: exit %d; want 1", code)
	}

	srv.Stop()
	start := time.Now()
	if login(alice, pw+totpAt(t, aliceKey, time.Now())) {
		t.Error("authenticated with otpgated stopped")
	}
	// timeout 1s * (retries 1 + 1) * 1 server, plus pamtester's own time.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("with otpgated stopped the login took %s; want about 2 s at most", d)
	}
	if code := runHelper(t, helperCfg, alice, pw+"123456"); code != 2 {
		t.Errorf("otpgate-pam with otpgated stopped: exit %d; want 2", code)
	}
}

// auditReason returns the reason of otpgated's last audit line ("radius
// access", JSON on stderr) about user, waiting up to 2 s for it to be want:
// the line is written just after the answer is sent.
func auditReason(t *testing.T, srv *pamServer, user, want string) string {
	t.Helper()
	reason := ""
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(25 * time.Millisecond) {
		for _, rec := range auditRecords(srv.Daemon) {
			if rec.User == user {
				reason = rec.Reason
			}
		}
		if reason == want || time.Now().After(deadline) {
			return reason
		}
	}
}

// runHelper runs otpgate-pam directly as pam_exec would and returns its exit code.
func runHelper(t *testing.T, config, user, authtok string) int {
	t.Helper()
	cmd := exec.Command(bin("otpgate-pam"), "-config", config)
	cmd.Env = []string{"PAM_TYPE=auth", "PAM_USER=" + user, "PAM_SERVICE=e2e", "PAM_RHOST=127.0.0.1"}
	cmd.Stdin = strings.NewReader(authtok)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if strings.Contains(out.String(), authtok) {
		t.Errorf("otpgate-pam printed the authtok:\n%s", out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("otpgate-pam: %v", err)
	}
	t.Logf("otpgate-pam exit %d: %s", cmd.ProcessState.ExitCode(), strings.TrimSpace(out.String()))
	return cmd.ProcessState.ExitCode()
}

// pamStep is one pamtester login and what must come of it.
type pamStep struct {
	name        string
	user        string
	answers     []string
	want        bool
	wantPrompts int // 0: not checked (the server may or may not challenge)
	wantReason  string
}

// runPAMSteps runs steps through service with pamtester, checking each
// outcome, prompt count and otpgated's audit reason.
func runPAMSteps(t *testing.T, srv *pamServer, service string, steps []pamStep) {
	t.Helper()
	for _, st := range steps {
		ok, prompts, out := pamtester(t, service, st.user, st.answers...)
		if ok != st.want {
			t.Errorf("%s: authenticated = %v; want %v\n%s", st.name, ok, st.want, out)
		}
		if st.wantPrompts != 0 && prompts != st.wantPrompts {
			t.Errorf("%s: %d prompts; want %d\n%s", st.name, prompts, st.wantPrompts, out)
		}
		if got := auditReason(t, srv, st.user, st.wantReason); got != st.wantReason {
			t.Errorf("%s: otpgated's audit reason = %q; want %q", st.name, got, st.wantReason)
		}
	}
}

// TestHostPAMRadius runs Debian's pam_radius_auth
// (packaging/pam.d/otpgate-radius) through pamtester against otpgated in
// challenge mode: the password at the first prompt, the code at a second
// one. It writes a PAM service into /etc/pam.d.
func TestHostPAMRadius(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "pamtester")
	requireTool(t, "oathtool")
	requirePAMRadius(t)

	srv := newPamServer(t, pamRadiusClient)
	const pw = "Tr0ub4dor&3"
	alice := randomName("alice")
	aliceKey := srv.addUser(alice, pw)
	carol := randomName("carol")
	carolKey := srv.addUser(carol, pw)
	srv.otpgate("", "user", "disable", carol)

	service := installPAMService(t, pamRadiusStack(t, srv.Addr))
	waitStepStart()
	code := totpAt(t, aliceKey, time.Now().Add(30*time.Second))

	steps := []pamStep{
		{"wrong code", alice, []string{pw, wrongCode(t, aliceKey)}, false, 2, "bad_code"},
		{"wrong password", alice, []string{"not" + pw, code}, false, 0, "bad_password"},
		{"unknown user", randomName("nobody"), []string{pw, code}, false, 0, "unknown_user"},
		{"disabled user", carol, []string{pw, totpAt(t, carolKey, time.Now().Add(30*time.Second))}, false, 0, "disabled"},
		{"right password and code", alice, []string{pw, code}, true, 2, "ok"},
		{"replayed code", alice, []string{pw, code}, false, 2, "code_reused"},
	}
	runPAMSteps(t, srv, service, steps)

	srv.Stop()
	if ok, _, out := pamtester(t, service, alice, pw, totpAt(t, aliceKey, time.Now())); ok {
		t.Errorf("authenticated with otpgated stopped\n%s", out)
	}
}
