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
