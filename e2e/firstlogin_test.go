package e2e

// First-login enrollment over RADIUS ([auth] enroll_at_login): a user who
// must use MFA and has no token enrolls in the login itself. The key is
// read off the challenge text as a person would, the code comes from
// oathtool; through radclient, pamtester with pam_radius_auth, and a real
// sshd with pam_radius_auth.

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

const firstLoginToml = "[auth]\nenroll_at_login = true\n"

var (
	// keyInChallengeRe is the key in groups of four in a challenge's text.
	keyInChallengeRe = regexp.MustCompile(`[A-Z2-7]{4}(?: [A-Z2-7]{4}){7}`)
	loginRecoveryRe  = regexp.MustCompile(`[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}`)
)

// keyFromChallenge is the base32 key a challenge text shows ("" if none).
func keyFromChallenge(text string) string {
	return strings.ReplaceAll(keyInChallengeRe.FindString(text), " ", "")
}

// radAuth sends one Access-Request from 127.0.0.1 (the "localhost" client,
// auto mode) with radclient and returns the reply code, its State, its
// Reply-Messages and radclient's output.
func radAuth(t *testing.T, d *Daemon, user, password, state string) (code, st string, msgs []string, out string) {
	t.Helper()
	attrs := userPassword(user, password)
	if state != "" {
		attrs = append(attrs, "State="+state)
	}
	r := radclientSend(t, d.Addr, d.Secret, attrs...)
	return r.code, r.state, r.msgs, r.out
}

// TestFirstLoginEnrollRadclient: a FortiGate/ASA-style challenge client
// (radclient, State by State) through first-login enrollment, the pending
// key refused before it is confirmed, and no way back in for an enrolled
// user.
func TestFirstLoginEnrollRadclient(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	srv := newPamServer(t, firstLoginToml)
	const pw = "first-Login-pw-1"
	user := randomName("fl")
	srv.otpgate(pw+"\n", "user", "add", user, "--password-stdin")

	expect := func(what, got, want, out string) {
		t.Helper()
		if got != want {
			t.Fatalf("%s: got %q, want %q\n%s", what, got, want, out)
		}
	}
	reason := func(what, want string) {
		t.Helper()
		if got := auditReason(t, srv, user, want); got != want {
			t.Errorf("%s: audit reason %q, want %q", what, got, want)
		}
	}

	waitStepStart()
	code, st, msgs, out := radAuth(t, srv.Daemon, user, pw, "")
	expect("offer", code, "Access-Challenge", out)
	reason("offer", "enroll_offered")
	if len(msgs) != 1 || len(msgs[0]) > 253 {
		t.Fatalf("offer: want one Reply-Message of at most 253 bytes, got %q", msgs)
	}
	key := keyFromChallenge(msgs[0])
	if key == "" || !strings.Contains(msgs[0], user) || !strings.Contains(msgs[0], "6-digit code") {
		t.Fatalf("offer %q: want the account, the key in groups of four and the question for the code", msgs[0])
	}
	t.Logf("offer: %s", msgs[0])

	// The pending key logs in nowhere before it is confirmed.
	pending := totpAt(t, key, time.Now())
	if c, _, _, out := radAuth(t, srv.Daemon, user, pw+pending, ""); c != "Access-Reject" {
		t.Fatalf("password+pending code: %s, want Access-Reject\n%s", c, out)
	}
	if info := srv.otpgate("", "user", "show", user); !strings.Contains(info, "pending") {
		t.Errorf("user show does not say the enrollment is pending:\n%s", info)
	}

	// The offer above was answered by nothing; a new login offers a new
	// key (the pending one is replaced).
	code, st, msgs, out = radAuth(t, srv.Daemon, user, pw, "")
	expect("second offer", code, "Access-Challenge", out)
	key = keyFromChallenge(msgs[0])

	// A wrong code: a fresh try with a new State, showing the key again.
	code, st2, msgs, out := radAuth(t, srv.Daemon, user, wrongCode(t, key), st)
	expect("wrong code", code, "Access-Challenge", out)
	reason("wrong code", "enroll_bad_code")
	if st2 == st || keyFromChallenge(msgs[0]) != key {
		t.Fatalf("wrong code: want a new State and the same key again:\n%s", out)
	}
	if c, _, _, out := radAuth(t, srv.Daemon, user, totpAt(t, key, time.Now()), st); c != "Access-Reject" {
		t.Fatalf("the spent State: %s, want Access-Reject\n%s", c, out)
	}

	// The right code: the token is active, the recovery codes are shown.
	waitStepStart()
	enrollCode := totpAt(t, key, time.Now())
	code, st3, msgs, out := radAuth(t, srv.Daemon, user, enrollCode, st2)
	expect("right code", code, "Access-Challenge", out)
	reason("right code", "enroll_confirmed")
	if n := len(loginRecoveryRe.FindAllString(msgs[0], -1)); n != 10 || len(msgs[0]) > 253 {
		t.Fatalf("recovery message (%d bytes) shows %d codes, want 10:\n%s", len(msgs[0]), n, msgs[0])
	}
	recovery := loginRecoveryRe.FindString(msgs[0])
	t.Logf("recovery codes: %s", msgs[0])
	// Any answer goes on (radclient sends an empty User-Password as no
	// attribute at all, which is malformed; pam_radius_auth pads it).
	code, _, _, out = radAuth(t, srv.Daemon, user, "ok", st3)
	expect("Enter after the recovery codes", code, "Access-Accept", out)
	reason("accepted", "enrolled")

	// Enrolled: the enrollment code is spent, and a new login is the
	// ordinary code challenge: no key, no way to replace the token.
	code, st, msgs, out = radAuth(t, srv.Daemon, user, pw, "")
	expect("login after enrollment", code, "Access-Challenge", out)
	if keyFromChallenge(msgs[0]) != "" || strings.Contains(msgs[0], "setup") {
		t.Fatalf("an enrolled user was offered a key:\n%s", out)
	}
	code, _, _, out = radAuth(t, srv.Daemon, user, enrollCode, st)
	expect("the enrollment code again", code, "Access-Reject", out)
	reason("the enrollment code again", "code_reused")
	code, _, _, out = radAuth(t, srv.Daemon, user, pw+recovery, "")
	expect("a recovery code shown", code, "Access-Accept", out)
	reason("a recovery code shown", "recovery_code")
}

// pamtesterFunc is pamtester whose answers depend on the prompts: answer
// gets the whole output so far and returns the next line to type.
func pamtesterFunc(t *testing.T, service, user string, answer func(output string) string) (bool, string) {
	t.Helper()
	ok, _, out := pamConverse(t, service, user, func(output string, _ int) (string, bool) { return answer(output), true })
	return ok, out
}

// firstLoginAnswers answers pam_radius_auth's prompts for a first-login
// enrollment: the password, the code of the key the challenge shows
// (wrong first when wrongFirst), Enter after the recovery codes. It
// records the key and what it saw.
type firstLoginAnswers struct {
	t          *testing.T
	pw         string
	wrongFirst bool
	key        string
	prompts    []string
	recovery   bool // the recovery codes were shown
}

func (a *firstLoginAnswers) answer(prompt string) string {
	a.prompts = append(a.prompts, prompt)
	switch {
	case strings.Contains(prompt, "recovery codes"):
		a.recovery = true
		return ""
	case keyFromChallenge(prompt) != "":
		a.key = keyFromChallenge(prompt)
		if a.wrongFirst {
			a.wrongFirst = false
			return wrongCode(a.t, a.key)
		}
		waitStepStart()
		return totpAt(a.t, a.key, time.Now())
	case strings.Contains(prompt, "6-digit code"):
		// An ordinary code challenge: the user has a token already.
		return totpAt(a.t, a.key, time.Now())
	default:
		return a.pw
	}
}

// TestHostPAMRadiusFirstLogin: pam_radius_auth (through pamtester) shows
// the first-login challenge, the key is read off the prompt, a wrong code
// gets another prompt, the right one enrolls, the recovery codes are
// shown and Enter logs in. The next login gets the ordinary code prompt.
func TestHostPAMRadiusFirstLogin(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "pamtester")
	requireTool(t, "oathtool")
	requirePAMRadius(t)
	srv := newPamServer(t, firstLoginToml+"\n"+pamRadiusClient)
	const pw = "Tr0ub4dor&3"
	user := randomName("flpam")
	srv.otpgate(pw+"\n", "user", "add", user, "--password-stdin")
	service := installPAMService(t, pamRadiusStack(t, srv.Addr))

	a := &firstLoginAnswers{t: t, pw: pw, wrongFirst: true}
	seen := 0
	ok, out := pamtesterFunc(t, service, user, func(output string) string {
		p := output[seen:]
		seen = len(output)
		return a.answer(p)
	})
	if !ok || a.key == "" || !a.recovery {
		t.Fatalf("first-login enrollment through pam_radius_auth: authenticated %v, key seen %v, recovery codes seen %v\n%s",
			ok, a.key != "", a.recovery, out)
	}
	if got := auditReason(t, srv, user, "enrolled"); got != "enrolled" {
		t.Errorf("audit reason %q, want enrolled", got)
	}
	if len(a.prompts) != 4 { // password, key, key again after the wrong code, recovery codes
		t.Errorf("prompts: %q; want the password, the key, the key again and the recovery codes", a.prompts)
	}

	// Enrolled now: the ordinary prompt, the token's code logs in.
	time.Sleep(time.Duration(31-time.Now().Unix()%30) * time.Second) // a step after the enrollment code
	b := &firstLoginAnswers{t: t, pw: pw, key: a.key}
	seen = 0
	ok, out = pamtesterFunc(t, service, user, func(output string) string {
		p := output[seen:]
		seen = len(output)
		if keyFromChallenge(p) != "" {
			t.Errorf("an enrolled user was shown a key: %q", p)
		}
		return b.answer(p)
	})
	if !ok {
		t.Fatalf("login after enrollment refused:\n%s", out)
	}
}

// TestHostSSHFirstLogin: a real sshd with pam_radius_auth, a user who has
// never enrolled: keyboard-interactive shows the key, the code from
// oathtool enrolls, Enter after the recovery codes, and the session is the
// user's.
func TestHostSSHFirstLogin(t *testing.T) {
	requireHostTests(t)
	requirePAMRadius(t)
	requireTool(t, "sshd")
	requireTool(t, "oathtool")
	srv := newPamServer(t, firstLoginToml+"\n"+pamRadiusClient)
	const pw = "Tr0ub4dor&3"
	user := randomName("flssh")
	srv.otpgate(pw+"\n", "user", "add", user, "--password-stdin")
	addUnixUser(t, user)
	s := startSSHD(t, pamRadiusStack(t, srv.Addr), "keyboard-interactive")

	a := &firstLoginAnswers{t: t, pw: pw}
	err := sshLoginFunc(t, s, user, nil, func(instruction, q string) (string, error) { return a.answer(instruction + q), nil })
	if err != nil || a.key == "" || !a.recovery {
		t.Fatalf("first-login enrollment over ssh: %v (key seen %v, recovery codes seen %v, prompts %q)", err, a.key != "", a.recovery, a.prompts)
	}
	if got := auditReason(t, srv, user, "enrolled"); got != "enrolled" {
		t.Errorf("audit reason %q, want enrolled", got)
	}
}

// TestFirstLoginEnrollLink: with [web], the first-login challenge offers a
// one-time link (issued by otpgated itself) instead of the key; the link's
// page shows the key, and its code typed at the prompt enrolls.
func TestFirstLoginEnrollLink(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	port := testtool.FreePort(t, "tcp")
	web := fmt.Sprintf("[web]\nlisten = \"127.0.0.1:%d\"\npublic_url = \"http://127.0.0.1:%d\"\n", port, port)
	srv := newPamServer(t, firstLoginToml+"\n"+web)
	const pw = "first-Login-pw-2"
	user := randomName("fllink")
	srv.otpgate(pw+"\n", "user", "add", user, "--password-stdin")

	code, st, msgs, out := radAuth(t, srv.Daemon, user, pw, "")
	if code != "Access-Challenge" || len(msgs) != 1 {
		t.Fatalf("offer: %s\n%s", code, out)
	}
	link := regexp.MustCompile(`http://127\.0\.0\.1:\d+/enroll/[A-Za-z0-9_-]+`).FindString(msgs[0])
	if link == "" || keyFromChallenge(msgs[0]) != "" {
		t.Fatalf("offer %q: want a link and no key", msgs[0])
	}
	t.Logf("offer: %s", msgs[0])

	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	key := keyFromChallenge(string(page))
	if resp.StatusCode != http.StatusOK || key == "" {
		t.Fatalf("link page: %s, key found %v", resp.Status, key != "")
	}
	waitStepStart()
	code, st, msgs, out = radAuth(t, srv.Daemon, user, totpAt(t, key, time.Now()), st)
	if code != "Access-Challenge" || len(loginRecoveryRe.FindAllString(msgs[0], -1)) != 10 {
		t.Fatalf("code from the link's key: %s\n%s", code, out)
	}
	if code, _, _, out = radAuth(t, srv.Daemon, user, "ok", st); code != "Access-Accept" {
		t.Fatalf("after the recovery codes: %s\n%s", code, out)
	}
	resp, err = http.Get(link)
	if err != nil {
		t.Fatalf("the link after activation: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if keyFromChallenge(string(b)) != "" {
		t.Error("the link still shows a key after the token was activated")
	}
}
