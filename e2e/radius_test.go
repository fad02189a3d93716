package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// Shared secrets of the RADIUS clients in radiusDaemon's config.
const (
	secretAppend    = "e2e-append-secret-0123456789ab"
	secretOTPOnly   = "e2e-otponly-secret-0123456789a"
	secretChallenge = "e2e-challenge-secret-012345678"
	secretLegacy    = "e2e-legacy-secret-0123456789ab"
)

// radiusDaemon is a running otpgated with four clients on loopback:
// 127.0.0.1 append, 127.0.0.2 otp-only, 127.0.0.3 challenge (all requiring
// Message-Authenticator) and 127.0.0.5 append without that requirement.
// 127.0.0.4 is no client.
type radiusDaemon struct {
	t      *testing.T
	env    *cliEnv
	addr   string
	audit  string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan error
}

func newRadiusEnv(t *testing.T) (*cliEnv, string, string) {
	t.Helper()
	port := testtool.FreePort(t, "udp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	audit := filepath.Join(t.TempDir(), "audit.log")
	e := newCLIEnv(t, fmt.Sprintf(`[log]
level = "debug"
audit = %q

[radius]
listen = [%q]
acct_listen = ["127.0.0.1:0"]
reject_delay = "200ms"

[[client]]
name = "vpn-append"
address = "127.0.0.1"
secret = %q
mode = "append"

[[client]]
name = "portal-otp"
address = "127.0.0.2/32"
secret = %q
mode = "otp-only"

[[client]]
name = "pam-challenge"
address = "127.0.0.3"
secret = %q
mode = "challenge"

[[client]]
name = "legacy"
address = "127.0.0.5"
secret = %q
mode = "append"
require_message_authenticator = false
`, audit, addr, secretAppend, secretOTPOnly, secretChallenge, secretLegacy))
	return e, addr, audit
}

// startRadiusDaemon starts otpgated and waits until it answers Status-Server.
func startRadiusDaemon(t *testing.T, e *cliEnv, addr, audit string) *radiusDaemon {
	t.Helper()
	d := &radiusDaemon{t: t, env: e, addr: addr, audit: audit, stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	d.cmd = exec.Command(bin("otpgated"), "-config", e.config)
	d.cmd.Stdout, d.cmd.Stderr = d.stderr, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start otpgated: %v", err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("otpgated output:\n%s", d.stderr.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-d.exited:
			t.Fatalf("otpgated exited early (%v):\n%s", err, d.stderr.String())
		default:
		}
		out := d.radclient(secretAppend, "status", 0.3, "Message-Authenticator=0x00")
		if strings.Contains(out, "Received Access-Accept") {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("otpgated does not answer Status-Server on %s:\n%s\n%s", addr, out, d.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects a clean exit within 10 s.
func (d *radiusDaemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Errorf("otpgated exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("otpgated did not stop within 10 s of SIGTERM")
	}
}

// radclient sends one request with FreeRADIUS's radclient and returns its
// output; radclient itself checks the Response Authenticator and the
// Message-Authenticator of the reply.
func (d *radiusDaemon) radclient(secret, command string, timeout float64, attrs ...string) string {
	d.t.Helper()
	rc := requireTool(d.t, "radclient")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rc, "-x", "-r", "1", "-t", strconv.FormatFloat(timeout, 'f', -1, 64), d.addr, command, secret)
	cmd.Stdin = strings.NewReader(strings.Join(attrs, ",") + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		d.t.Fatalf("radclient: %v", err)
	}
	return out.String()
}

// auth sends an Access-Request from src with the client's secret and returns
// the reply code name ("Access-Accept", ...; "" for no reply) and output.
func (d *radiusDaemon) auth(src, secret string, attrs ...string) (string, string) {
	d.t.Helper()
	attrs = append(attrs, "Packet-Src-IP-Address="+src)
	out := d.radclient(secret, "auth", 2, attrs...)
	m := regexp.MustCompile(`Received (Access-\w+) Id`).FindStringSubmatch(out)
	if m == nil {
		return "", out
	}
	return m[1], out
}

// oathCode returns the TOTP code of a base32 secret at now+offset, computed
// by oathtool.
func oathCode(t *testing.T, b32 string, offset time.Duration) string {
	t.Helper()
	tool := requireTool(t, "oathtool")
	at := time.Now().Add(offset).UTC().Format("2006-01-02 15:04:05 UTC")
	out, err := exec.Command(tool, "--totp", "-b", "-N", at, b32).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// enrollViaCLI adds a user with the otpgate CLI and enrolls a token the way
// a person does: read the key off the output, answer with oathtool's code.
// It returns the base32 secret.
func enrollViaCLI(t *testing.T, e *cliEnv, user, password string) string {
	t.Helper()
	if password == "" {
		e.mustOtpgate("", "user", "add", user, "--no-password")
	} else {
		e.mustOtpgate(password+"\n", "user", "add", user, "--password-stdin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("otpgate"), "-config", e.config, "enroll", user)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	var seen strings.Builder
	var b32 string
	for !strings.Contains(seen.String(), "Enter the 6-digit code") {
		chunk := make([]byte, 4096)
		n, err := r.Read(chunk)
		seen.Write(chunk[:n])
		if err != nil {
			t.Fatalf("enroll %s ended before asking for a code (%v):\n%s\n%s", user, err, seen.String(), stderr.String())
		}
	}
	m := regexp.MustCompile(`Key:\s+((?:[A-Z2-7]{1,4} ?)+)`).FindStringSubmatch(seen.String())
	if m == nil {
		t.Fatalf("no key in the enroll output:\n%s", seen.String())
	}
	b32 = strings.ReplaceAll(strings.TrimSpace(m[1]), " ", "")
	// Answer with the previous time step's code (within the one step of
	// skew otpgate allows): activation marks the enrollment code as used,
	// so the current step's code stays free for a test's first login. Not
	// in the last 5 s of a step, so that step is still within the skew
	// when otpgate checks the code.
	if into := time.Now().Unix() % 30; into >= 25 {
		time.Sleep(time.Duration(30-into)*time.Second + 100*time.Millisecond)
	}
	io.WriteString(stdin, oathCode(t, b32, -30*time.Second)+"\n")
	stdin.Close()
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("enroll %s: %v\n%s%s\n%s", user, err, seen.String(), rest, stderr.String())
	}
	if !strings.Contains(string(rest), "Code accepted") {
		t.Fatalf("enroll %s did not accept the code:\n%s", user, rest)
	}
	return b32
}

// otherCode returns a 6-digit code that is none of the valid codes around now.
func otherCode(t *testing.T, b32 string) string {
	valid := map[string]bool{}
	for _, off := range []time.Duration{-60 * time.Second, -30 * time.Second, 0, 30 * time.Second, 60 * time.Second} {
		valid[oathCode(t, b32, off)] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (123457*(i+1))%1_000_000)
		if !valid[c] {
			return c
		}
	}
}

// TestRadiusWithRadclient runs otpgated and talks to it with FreeRADIUS's
// radclient: append, otp-only and challenge logins with oathtool codes,
// wrong and replayed codes, and the packets that must get no answer.
func TestRadiusWithRadclient(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	e, addr, audit := newRadiusEnv(t)
	const alicePW, carolPW = "alice-Password-1", "carol Password 2"
	aliceB32 := enrollViaCLI(t, e, "alice", alicePW)
	bobB32 := enrollViaCLI(t, e, "bob", "bob-Password-3")
	carolB32 := enrollViaCLI(t, e, "carol", carolPW)
	d := startRadiusDaemon(t, e, addr, audit)

	ma := "Message-Authenticator=0x00"
	pw := func(s string) string { return fmt.Sprintf("User-Password=%q", s) }
	expect := func(what, got, want, out string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %q, want %q\n%s", what, got, want, out)
		}
	}

	// append: password + code, from the append client.
	aliceCode := oathCode(t, aliceB32, 0)
	got, out := d.auth("127.0.0.1", secretAppend, "User-Name=alice", pw(alicePW+aliceCode), ma)
	expect("append accept", got, "Access-Accept", out)
	if !strings.Contains(out, "Message-Authenticator = 0x") {
		t.Errorf("the Accept carries no Message-Authenticator:\n%s", out)
	}
	// The same code again (a new request, not a retransmission): replay.
	got, out = d.auth("127.0.0.1", secretAppend, "User-Name=alice", pw(alicePW+aliceCode), ma)
	expect("replayed code", got, "Access-Reject", out)
	if strings.Contains(out, "Reply-Message") {
		t.Errorf("a Reject tells the NAS why:\n%s", out)
	}
	// A wrong code.
	got, out = d.auth("127.0.0.1", secretAppend, "User-Name=alice", pw(alicePW+otherCode(t, aliceB32)), ma)
	expect("wrong code", got, "Access-Reject", out)
	// A wrong password with a right code (bob's code is unused).
	got, out = d.auth("127.0.0.1", secretAppend, "User-Name=bob", pw("not-bobs-password"+oathCode(t, bobB32, 0)), ma)
	expect("wrong password", got, "Access-Reject", out)

	// otp-only: the code alone, from the otp-only client.
	got, out = d.auth("127.0.0.2", secretOTPOnly, "User-Name=bob", pw(oathCode(t, bobB32, 0)), ma)
	expect("otp-only accept", got, "Access-Accept", out)

	// challenge: password, then the code with the State, as two radclient runs.
	got, out = d.auth("127.0.0.3", secretChallenge, "User-Name=carol", pw(carolPW), ma)
	expect("challenge", got, "Access-Challenge", out)
	st := regexp.MustCompile(`State = (0x[0-9a-f]+)`).FindStringSubmatch(out)
	if st == nil || !strings.Contains(out, "Reply-Message = ") {
		t.Fatalf("Access-Challenge without State and Reply-Message:\n%s", out)
	}
	got, out = d.auth("127.0.0.3", secretChallenge, "User-Name=carol", pw(oathCode(t, carolB32, 0)), "State="+st[1], ma)
	expect("challenge answer", got, "Access-Accept", out)
	// The State is single use.
	got, out = d.auth("127.0.0.3", secretChallenge, "User-Name=carol", pw(oathCode(t, carolB32, 30*time.Second)), "State="+st[1], ma)
	expect("reused State", got, "Access-Reject", out)

	// No answer at all: unknown client, wrong secret, missing
	// Message-Authenticator where it is required.
	got, out = d.auth("127.0.0.4", secretAppend, "User-Name=alice", pw(alicePW+"000000"), ma)
	expect("unknown client", got, "", out)
	got, out = d.auth("127.0.0.1", "a-wrong-shared-secret-0123456", "User-Name=alice", pw(alicePW+"000000"), ma)
	expect("wrong secret", got, "", out)
	got, out = d.auth("127.0.0.1", secretAppend, "User-Name=alice", pw(alicePW+"000000"))
	expect("missing Message-Authenticator", got, "", out)
	// A client configured without that requirement is answered (with one).
	got, out = d.auth("127.0.0.5", secretLegacy, "User-Name=alice", pw(alicePW+"000000"))
	expect("legacy client without Message-Authenticator", got, "Access-Reject", out)
	if !strings.Contains(out, "Message-Authenticator = 0x") {
		t.Errorf("the Reject to a legacy client carries no Message-Authenticator:\n%s", out)
	}

	// The audit log has one line per decision and no secret.
	d.stop()
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	results := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct{ User, Client, Result, Reason string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %q", line)
		}
		results[rec.Result]++
	}
	if results["accept"] != 3 || results["challenge"] != 1 || results["reject"] != 5 {
		t.Errorf("audit results %v, want 3 accept, 1 challenge, 5 reject\n%s", results, b)
	}
	all := string(b) + d.stderr.String()
	for _, secret := range []string{alicePW, carolPW, secretAppend, strings.TrimPrefix(st[1], "0x")} {
		if strings.Contains(all, secret) {
			t.Errorf("the logs contain a secret (%d chars)", len(secret))
		}
	}
}
