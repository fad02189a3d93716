package totp

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/otpgate/otpgate/internal/testtool"
)

// rfcSecret is the RFC 6238 Appendix B SHA1 test key.
var rfcSecret = []byte("12345678901234567890")

var b32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// oathtool returns oathtool's TOTP code for secret at t (SHA1, 6 digits, 30 s).
func oathtool(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	out := testtool.Run(t, "oathtool", "--totp", "-b", b32NoPad.EncodeToString(secret), "--now", "@"+strconv.FormatInt(at.Unix(), 10))
	return strings.TrimSpace(out)
}

// TestCodeRFC6238 checks the RFC 6238 Appendix B SHA1 vectors (the last 6
// of the 8 digits listed there).
func TestCodeRFC6238(t *testing.T) {
	tests := []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
		{20000000000, "353130"}, // beyond 2038 (RFC 6238 §4)
	}
	for _, tt := range tests {
		got, err := Default.CodeAt(rfcSecret, time.Unix(tt.unix, 0))
		if err != nil || got != tt.want {
			t.Errorf("CodeAt(t=%d) = %q, %v; want %q", tt.unix, got, err, tt.want)
		}
		step, ok, err := Default.Match(rfcSecret, tt.want, time.Unix(tt.unix, 0), 0)
		if err != nil || !ok || step != uint64(tt.unix/30) {
			t.Errorf("Match(t=%d) = %d, %v, %v; want %d, true", tt.unix, step, ok, err, tt.unix/30)
		}
	}
	if _, err := Default.CodeAt(nil, time.Now()); err == nil {
		t.Error("CodeAt(nil secret) succeeded")
	}
	if _, err := Default.CodeAt(rfcSecret, time.Unix(-1, 0)); err == nil {
		t.Error("CodeAt(before 1970) succeeded")
	}
}

// TestCodeMatchesOathtool compares CodeAt and Match with oathtool (OATH
// Toolkit) and with an independent pquerna/otp totp computation.
func TestCodeMatchesOathtool(t *testing.T) {
	secret := make([]byte, 20)
	rand.Read(secret)
	now := time.Now()
	for _, off := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
		at := now.Add(off)
		want := oathtool(t, secret, at)
		got, err := Default.CodeAt(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("offset %v: CodeAt = %q, oathtool = %q", off, got, want)
		}
		indep, err := pqtotp.GenerateCodeCustom(b32NoPad.EncodeToString(secret), at, pqtotp.ValidateOpts{
			Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil || indep != want {
			t.Errorf("offset %v: pquerna totp = %q, %v; oathtool = %q", off, indep, err, want)
		}
		// The oathtool code matches at "now" with skew 1, and reports its step.
		step, ok, err := Default.Match(secret, want, now, 1)
		wantStep := Default.Step(at)
		if err != nil || !ok || step != wantStep {
			// A collision between neighbouring steps (1e-6) would pick the later step.
			t.Errorf("offset %v: Match(oathtool code, now, 1) = %d, %v, %v; want %d, true", off, step, ok, err, wantStep)
		}
	}
	// Codes two steps away do not match with skew 1.
	for _, off := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		far := oathtool(t, secret, now.Add(off))
		near := map[string]bool{}
		for _, o := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
			c, _ := Default.CodeAt(secret, now.Add(o))
			near[c] = true
		}
		if near[far] {
			continue // same code in the window by chance
		}
		if _, ok, _ := Default.Match(secret, far, now, 1); ok {
			t.Errorf("code from %v matched with skew 1", off)
		}
	}
}

func TestMatch(t *testing.T) {
	at := time.Unix(1111111111, 0) // code 050471 at step 37037037
	const step = 37037037
	prev, _ := Default.CodeAt(rfcSecret, at.Add(-30*time.Second))
	next, _ := Default.CodeAt(rfcSecret, at.Add(30*time.Second))
	far, _ := Default.CodeAt(rfcSecret, at.Add(60*time.Second))
	farther, _ := Default.CodeAt(rfcSecret, at.Add(90*time.Second))
	tests := []struct {
		name     string
		secret   []byte
		code     string
		skew     int
		wantStep uint64
		wantOK   bool
		wantErr  bool
	}{
		{"exact", rfcSecret, "050471", 0, step, true, false},
		{"exact with skew", rfcSecret, "050471", 1, step, true, false},
		{"previous step", rfcSecret, prev, 1, step - 1, true, false},
		{"next step", rfcSecret, next, 1, step + 1, true, false},
		{"previous step without skew", rfcSecret, prev, 0, 0, false, false},
		{"two steps ahead", rfcSecret, far, 1, 0, false, false},
		{"two steps ahead with skew 2", rfcSecret, far, 2, step + 2, true, false},
		{"skew above MaxSkew is MaxSkew", rfcSecret, farther, MaxSkew + 5, 0, false, false},
		{"negative skew is zero", rfcSecret, prev, -5, 0, false, false},
		{"wrong code", rfcSecret, "123456", 1, 0, false, false},
		{"leading space", rfcSecret, " 050471", 1, 0, false, false},
		{"trailing newline", rfcSecret, "050471\n", 1, 0, false, false},
		{"inner space", rfcSecret, "050 471", 1, 0, false, false},
		{"five digits", rfcSecret, "50471", 1, 0, false, false},
		{"eight digits", rfcSecret, "07081804", 1, 0, false, false},
		{"letters", rfcSecret, "05047a", 1, 0, false, false},
		{"full-width digits", rfcSecret, "０５０４７１", 1, 0, false, false},
		{"empty code", rfcSecret, "", 1, 0, false, false},
		{"empty secret", nil, "050471", 1, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStep, ok, err := Default.Match(tt.secret, tt.code, at, tt.skew)
			if ok != tt.wantOK || gotStep != tt.wantStep || (err != nil) != tt.wantErr {
				t.Fatalf("Match(%q, skew %d) = %d, %v, %v; want %d, %v, error %v", tt.code, tt.skew, gotStep, ok, err, tt.wantStep, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestMatchNearEpoch(t *testing.T) {
	// Step 0 with skew 1 must not wrap around to step 2^64-1.
	code, err := Default.CodeAt(rfcSecret, time.Unix(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	step, ok, err := Default.Match(rfcSecret, code, time.Unix(10, 0), 1)
	if err != nil || !ok || step != 0 {
		t.Fatalf("Match at step 0 = %d, %v, %v", step, ok, err)
	}
	if _, ok, err := Default.Match(rfcSecret, code, time.Unix(-100, 0), 1); ok || err == nil {
		t.Fatalf("Match before 1970: ok %v, err %v", ok, err)
	}
}

// FuzzMatch: only codes of the token's length can match, and a matched step
// lies in the window.
func FuzzMatch(f *testing.F) {
	f.Add([]byte("12345678901234567890"), "287082", int64(59), 1, false)
	f.Add([]byte("12345678901234567890"), "94287082", int64(59), 1, true)
	f.Fuzz(func(t *testing.T, secret []byte, code string, unix int64, skew int, eight bool) {
		p := Default
		if eight {
			p = params(t, "SHA256", 8, 30)
		}
		at := time.Unix(unix, 0)
		step, ok, err := p.Match(secret, code, at, skew)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("matched with error %v", err)
		}
		if !IsDigits(code, p.Digits()) {
			t.Fatalf("code %q matched %d digits", code, p.Digits())
		}
		now := p.Step(at)
		s := uint64(max(0, min(skew, MaxSkew)))
		if step+s < now || step > now+s {
			t.Fatalf("step %d outside window around %d (skew %d)", step, now, skew)
		}
	})
}
