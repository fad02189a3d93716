package totp

import (
	"encoding/base32"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// RFC 6238 Appendix B test vectors (8 digits, period 30).
func TestMatchRFC6238(t *testing.T) {
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
			seed := []byte(seeds[alg])
			p := params(t, alg, 8, 30)
			want := uint64(v.unix / 30)
			if got := p.Code(seed, want); got != code {
				t.Errorf("%s @%d: Code %s, want %s", alg, v.unix, got, code)
			}
			for _, skew := range []int{0, 1} {
				step, ok, err := p.Match(seed, code, time.Unix(v.unix, 0), skew)
				if err != nil || !ok || step != want {
					t.Errorf("%s @%d skew %d: step %d ok %v err %v; want %d", alg, v.unix, skew, step, ok, err, want)
				}
			}
			// One step later the same code matches only with skew.
			if _, ok, _ := p.Match(seed, code, time.Unix(v.unix+30, 0), 0); ok {
				t.Errorf("%s @%d: matched the next step with skew 0", alg, v.unix)
			}
			if step, ok, _ := p.Match(seed, code, time.Unix(v.unix+30, 0), 1); !ok || step != want {
				t.Errorf("%s @%d+30: step %d ok %v with skew 1, want %d", alg, v.unix, step, ok, want)
			}
			if _, ok, _ := p.Match(seed, code, time.Unix(v.unix+60, 0), 1); ok {
				t.Errorf("%s @%d+60: matched two steps away with skew 1", alg, v.unix)
			}
			// 6 digits are the last 6 of the 8-digit code (mod 10^6).
			p6 := params(t, alg, 6, 30)
			if step, ok, err := p6.Match(seed, code[2:], time.Unix(v.unix, 0), 0); err != nil || !ok || step != want {
				t.Errorf("%s @%d 6 digits: step %d ok %v err %v", alg, v.unix, step, ok, err)
			}
		}
	}
}

func TestMatchStrictDigits(t *testing.T) {
	secret := []byte("12345678901234567890")
	p := params(t, "SHA1", 6, 30)
	at := time.Unix(59, 0)
	for _, code := range []string{"287082", " 287082", "287082\n", "28708", "2870822", "28708a", "２８７０８２", ""} {
		_, ok, err := p.Match(secret, code, at, 1)
		if err != nil {
			t.Fatalf("%q: %v", code, err)
		}
		if ok != (code == "287082") {
			t.Errorf("Match(%q) = %v", code, ok)
		}
	}
	for _, bad := range []struct {
		algorithm      string
		digits, period int
	}{
		{"MD4", 6, 0},
		{"", 7, 0},
		{"", 6, -30},
	} {
		if _, err := NewParams(bad.algorithm, bad.digits, bad.period); err == nil {
			t.Errorf("token %+v accepted", bad)
		}
	}
	if _, _, err := p.Match(nil, "287082", at, 1); err == nil {
		t.Errorf("token without a secret accepted")
	}
	// Near the epoch the window is clipped, not wrapped.
	if _, ok, err := p.Match(secret, "755224", time.Unix(0, 0), 1); err != nil || !ok {
		t.Errorf("step 0 with skew 1: ok %v err %v", ok, err)
	}
}

// TestMatchOathtool cross-checks codes with oathtool (an independent
// implementation) for random-ish seeds and times.
func TestMatchOathtool(t *testing.T) {
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
		p := params(t, alg, len(code), 30)
		if step, ok, err := p.Match(seed, code, time.Unix(unix, 0), 1); err != nil || !ok || step != uint64(unix/30) {
			t.Errorf("%s: oathtool code %s: step %d ok %v err %v", alg, code, step, ok, err)
		}
	}
}

// TestCodeOfTwoSteps: a 6-digit code equal to the next step's (about one
// step in a million) matches as the later step, so that a caller who
// records it refuses the same digits 30 s later (auth's
// TestCodeOfTwoStepsIsUsedOnce). The collision is RFC 6238's SHA1 seed at
// steps 62075368 and 62075369 (unix 1862261040 and 1862261070: 235522
// both), checked here with oathtool.
func TestCodeOfTwoSteps(t *testing.T) {
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
	if step, ok, err := Default.Match(seed, code, at(first), 1); err != nil || !ok || step != first+1 {
		t.Errorf("Match at step %d: step %d ok %v err %v; want the later step %d", first, step, ok, err, first+1)
	}
}
