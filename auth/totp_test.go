package auth

import (
	"encoding/base32"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
)

// RFC 6238 Appendix B test vectors (8 digits, period 30).
func TestMatchStepRFC6238(t *testing.T) {
	seeds := map[string]string{
		"SHA1":   "12345678901234567890",
		"SHA256": "12345678901234567890123456789012",
		"SHA512": "1234567890123456789012345678901234567890123456789012345678901234",
	}
	vectors := []struct {
		unix  int64
		codes map[string]string
	}{
		{59, map[string]string{"SHA1": "94287082", "SHA256": "46119246", "SHA512": "90693936"}},
		{1111111109, map[string]string{"SHA1": "07081804", "SHA256": "68084774", "SHA512": "25091201"}},
		{1111111111, map[string]string{"SHA1": "14050471", "SHA256": "67062674", "SHA512": "99943326"}},
		{1234567890, map[string]string{"SHA1": "89005924", "SHA256": "91819424", "SHA512": "93441116"}},
		{2000000000, map[string]string{"SHA1": "69279037", "SHA256": "90698825", "SHA512": "38618901"}},
		{20000000000, map[string]string{"SHA1": "65353130", "SHA256": "77737706", "SHA512": "47863826"}},
	}
	for _, v := range vectors {
		for alg, code := range v.codes {
			tok := &store.TOTP{Secret: []byte(seeds[alg]), Algorithm: alg, Digits: 8, Period: 30}
			want := uint64(v.unix / 30)
			for _, skew := range []int{0, 1} {
				step, ok, err := matchStep(tok, code, time.Unix(v.unix, 0), skew)
				if err != nil || !ok || step != want {
					t.Errorf("%s @%d skew %d: step %d ok %v err %v; want %d", alg, v.unix, skew, step, ok, err, want)
				}
			}
			// One step later the same code matches only with skew.
			if _, ok, _ := matchStep(tok, code, time.Unix(v.unix+30, 0), 0); ok {
				t.Errorf("%s @%d: matched the next step with skew 0", alg, v.unix)
			}
			if step, ok, _ := matchStep(tok, code, time.Unix(v.unix+30, 0), 1); !ok || step != want {
				t.Errorf("%s @%d+30: step %d ok %v with skew 1, want %d", alg, v.unix, step, ok, want)
			}
			if _, ok, _ := matchStep(tok, code, time.Unix(v.unix+60, 0), 1); ok {
				t.Errorf("%s @%d+60: matched two steps away with skew 1", alg, v.unix)
			}
			// 6 digits are the last 6 of the 8-digit code (mod 10^6).
			tok6 := *tok
			tok6.Digits = 6
			if step, ok, err := matchStep(&tok6, code[2:], time.Unix(v.unix, 0), 0); err != nil || !ok || step != want {
				t.Errorf("%s @%d 6 digits: step %d ok %v err %v", alg, v.unix, step, ok, err)
			}
		}
	}
}

func TestMatchStepStrictDigits(t *testing.T) {
	tok := &store.TOTP{Secret: []byte("12345678901234567890"), Algorithm: "SHA1", Digits: 6, Period: 30}
	at := time.Unix(59, 0)
	for _, code := range []string{"287082", " 287082", "287082\n", "28708", "2870822", "28708a", "２８７０８２", ""} {
		_, ok, err := matchStep(tok, code, at, 1)
		if err != nil {
			t.Fatalf("%q: %v", code, err)
		}
		if ok != (code == "287082") {
			t.Errorf("matchStep(%q) = %v", code, ok)
		}
	}
	for _, bad := range []store.TOTP{
		{Secret: tok.Secret, Algorithm: "MD4", Digits: 6},
		{Secret: tok.Secret, Digits: 7},
		{Secret: tok.Secret, Digits: 6, Period: -30},
		{Digits: 6},
	} {
		if _, _, err := matchStep(&bad, "287082", at, 1); err == nil {
			t.Errorf("token %+v accepted", bad)
		}
	}
	// Near the epoch the window is clipped, not wrapped.
	if _, ok, err := matchStep(tok, "755224", time.Unix(0, 0), 1); err != nil || !ok {
		t.Errorf("step 0 with skew 1: ok %v err %v", ok, err)
	}
}

// TestMatchStepOathtool cross-checks codes with oathtool (an independent
// implementation) for random-ish seeds and times.
func TestMatchStepOathtool(t *testing.T) {
	testtool.Require(t, "oathtool")
	for i, alg := range []string{"SHA1", "SHA256", "SHA512", "SHA1"} {
		seed := []byte(fmt.Sprintf("otpgate-oathtool-seed-%d-%s", i, alg))
		unix := int64(1_700_000_000 + i*7_777_777)
		b32 := base32.StdEncoding.EncodeToString(seed)
		args := []string{"--totp=" + strings.ToLower(alg), "-b", fmt.Sprintf("--now=@%d", unix), b32}
		if i == 3 {
			args = append([]string{"-d", "8"}, args...)
		}
		out, err := exec.Command("oathtool", args...).Output()
		if err != nil {
			t.Fatalf("oathtool %v: %v", args, err)
		}
		code := strings.TrimSpace(string(out))
		tok := &store.TOTP{Secret: seed, Algorithm: alg, Digits: len(code), Period: 30}
		if step, ok, err := matchStep(tok, code, time.Unix(unix, 0), 1); err != nil || !ok || step != uint64(unix/30) {
			t.Errorf("%s: oathtool code %s: step %d ok %v err %v", alg, code, step, ok, err)
		}
	}
}

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
