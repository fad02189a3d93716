package auth

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// TestCodeOfTwoStepsIsUsedOnce: a 6-digit code equal to the next step's
// (about one step in a million) is recorded as the later step, so the same
// digits are not accepted a second time 30 s later: one refusal of a code
// the app shows again, rather than one accepted replay. The collision is
// RFC 6238's SHA1 seed at steps 62075368 and 62075369 (unix 1862261040 and
// 1862261070: 235522 both), checked here with oathtool.
func TestCodeOfTwoStepsIsUsedOnce(t *testing.T) {
	testtool.Require(t, "oathtool")
	seed := []byte("12345678901234567890")
	const first, code = 62075368, "235522"
	oath := func(unix int64) string {
		t.Helper()
		out, err := exec.Command("oathtool", "--totp", fmt.Sprintf("--now=@%d", unix), fmt.Sprintf("%x", seed)).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	at := func(step int64) time.Time { return time.Unix(step*30+10, 0) }
	if a, b := oath(first*30), oath((first+1)*30); a != code || b != code {
		t.Fatalf("oathtool gives %s and %s, want %s at both steps", a, b, code)
	}
	next := oath((first + 2) * 30)

	tok := &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30}
	if step, ok, err := matchStep(tok, code, at(first), 1); err != nil || !ok || step != first+1 {
		t.Errorf("matchStep at step %d: step %d ok %v err %v; want the later step %d", first, step, ok, err, first+1)
	}

	e := newEnv(t, nil)
	e.update("otto", func(u *store.User) { u.TOTP.Secret = seed; u.TOTP.Enrolled = at(first - 100) })
	steps := []struct {
		step   int64
		code   string
		want   Result
		reason Reason
	}{
		{first, code, Accept, ReasonOK},
		{first + 1, code, Reject, ReasonCodeReused}, // the app shows the same digits
		{first + 2, next, Accept, ReasonOK},
	}
	for _, s := range steps {
		e.clk.Advance(at(s.step).Sub(e.clk.Now()))
		d := e.auth(Request{User: "otto", Mode: ModeOTPOnly, Password: s.code})
		if d.Result != s.want || d.Reason != s.reason {
			t.Errorf("step %d, code %s: %s/%s, want %s/%s", s.step, s.code, d.Result, d.Reason, s.want, s.reason)
		}
	}
	if got := e.user("otto").TOTP.LastStep; got != first+2 {
		t.Errorf("LastStep %d, want %d", got, first+2)
	}
}

// TestMatchStepBadToken: a stored token with unsupported settings or no
// secret is an error, not a wrong code.
func TestMatchStepBadToken(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, bad := range []store.TOTP{
		{Secret: secret, Algorithm: "MD4", Digits: 6},
		{Secret: secret, Digits: 7},
		{Secret: secret, Digits: 6, Period: -30},
		{Digits: 6},
	} {
		if _, _, err := matchStep(&bad, "287082", time.Unix(59, 0), 1); err == nil {
			t.Errorf("token %+v accepted", bad)
		}
	}
}

// TestSkewLimit: auth accepts the skews config accepts, up to totp.MaxSkew.
func TestSkewLimit(t *testing.T) {
	e := newEnv(t, nil)
	for skew := -1; skew <= totp.MaxSkew+1; skew++ {
		o := testOptions()
		o.Skew = skew
		_, err := New(o, e.st, nil)
		if want := skew >= 0 && skew <= totp.MaxSkew; (err == nil) != want {
			t.Errorf("skew %d: err %v, want accepted %v", skew, err, want)
		}
	}
}
