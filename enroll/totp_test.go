package enroll

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// rfcSecret is the RFC 6238 Appendix B SHA1 test key.
var rfcSecret = []byte("12345678901234567890")

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 20 || len(b) != 20 {
		t.Fatalf("secret lengths %d, %d; want 20 (160 bits)", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Fatal("two secrets are equal")
	}
}

func TestFormatSecret(t *testing.T) {
	tests := []struct {
		secret []byte
		want   string
	}{
		{rfcSecret, "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"},
		{[]byte("1234567890123456"), "GEZD GNBV GY3T QOJQ GEZD GNBV GY"},
		{[]byte{0xff}, "74"},
		{nil, ""},
	}
	for _, tt := range tests {
		got := FormatSecret(tt.secret)
		if got != tt.want {
			t.Errorf("FormatSecret(%x) = %q, want %q", tt.secret, got, tt.want)
		}
		if len(tt.secret) >= MinSecretSize {
			back, err := DecodeSecret(got)
			if err != nil || !bytes.Equal(back, tt.secret) {
				t.Errorf("DecodeSecret(FormatSecret) = %x, %v", back, err)
			}
		}
	}
}

func TestDecodeSecret(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr error
	}{
		{"upper", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", rfcSecret, nil},
		{"lower", "gezdgnbvgy3tqojqgezdgnbvgy3tqojq", rfcSecret, nil},
		{"grouped", "gezd gnbv gy3t qojq gezd gnbv gy3t qojq", rfcSecret, nil},
		{"dashes", "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ", rfcSecret, nil},
		{"padded 16 bytes", "GEZDGNBVGY3TQOJQGEZDGNBVGY======", []byte("1234567890123456"), nil},
		{"unpadded 16 bytes", "GEZDGNBVGY3TQOJQGEZDGNBVGY", []byte("1234567890123456"), nil},
		{"15 bytes", "GEZDGNBVGY3TQOJQGEZDGNBV", nil, ErrSecretTooShort},
		{"10 bytes", "GEZDGNBVGY3TQOJQ", nil, ErrSecretTooShort},
		{"empty", "", nil, ErrNotBase32},
		{"only padding", "====", nil, ErrNotBase32},
		{"digit 1", "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", nil, ErrNotBase32},
		{"digit 0", "0EZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", nil, ErrNotBase32},
		{"bad length", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQA", nil, ErrNotBase32},
		{"newline inside", "GEZDGNBVGY3TQOJQ\nGEZDGNBVGY3TQOJQ", nil, ErrNotBase32},
		{"hex", "3132333435363738393031323334353637383930", nil, ErrNotBase32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeSecret(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("DecodeSecret err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("DecodeSecret = %x, want %x", got, tt.want)
			}
			if err != nil && tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
}

func TestURI(t *testing.T) {
	secret := rfcSecret
	const b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	tests := []struct {
		name, issuer, account string
		secret                []byte
		want                  string // "" = don't compare the string
		wantErr               string
	}{
		{name: "plain", issuer: "otpgate", account: "alice", secret: secret,
			want: "otpauth://totp/otpgate:alice?secret=" + b32 + "&issuer=otpgate&algorithm=SHA1&digits=6&period=30"},
		{name: "spaces and email", issuer: "ACME Co", account: "john.doe@email.com", secret: secret,
			want: "otpauth://totp/ACME%20Co:john.doe@email.com?secret=" + b32 + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"},
		{name: "query metacharacters", issuer: "A&B=C+D", account: "x/y?z#w%", secret: secret},
		{name: "unicode", issuer: "Société Générale", account: "jürgen", secret: secret},
		{name: "empty issuer", issuer: "", account: "alice", secret: secret, wantErr: "issuer is empty"},
		{name: "empty account", issuer: "otpgate", account: "", secret: secret, wantErr: "account is empty"},
		{name: "colon in issuer", issuer: "a:b", account: "alice", secret: secret, wantErr: "contains ':'"},
		{name: "colon in account", issuer: "otpgate", account: "dom:alice", secret: secret, wantErr: "contains ':'"},
		{name: "newline in account", issuer: "otpgate", account: "alice\n", secret: secret, wantErr: "control character"},
		{name: "short secret", issuer: "otpgate", account: "alice", secret: secret[:15], wantErr: "shorter than 16 bytes"},
		{name: "no secret", issuer: "otpgate", account: "alice", secret: nil, wantErr: "shorter than 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := URI(tt.issuer, tt.account, tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("URI err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("URI =\n %s\nwant\n %s", got, tt.want)
			}
			if strings.Contains(got, "+") {
				t.Errorf("URI %q contains '+', spaces must be %%20", got)
			}

			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("net/url: %v", err)
			}
			q := u.Query()
			if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+tt.issuer+":"+tt.account {
				t.Errorf("net/url: scheme %q host %q path %q", u.Scheme, u.Host, u.Path)
			}
			wantQ := map[string]string{"secret": b32, "issuer": tt.issuer, "algorithm": "SHA1", "digits": "6", "period": "30"}
			if len(q) != len(wantQ) {
				t.Errorf("query has %d keys, want %d: %v", len(q), len(wantQ), q)
			}
			for k, v := range wantQ {
				if q.Get(k) != v {
					t.Errorf("query %s = %q, want %q", k, q.Get(k), v)
				}
			}

			key, err := otp.NewKeyFromURL(got)
			if err != nil {
				t.Fatalf("otp.NewKeyFromURL: %v", err)
			}
			if key.Type() != "totp" || key.Issuer() != tt.issuer || key.AccountName() != tt.account ||
				key.Secret() != b32 || key.Period() != 30 || key.Digits() != otp.DigitsSix ||
				key.Algorithm() != otp.AlgorithmSHA1 {
				t.Errorf("pquerna key: type %q issuer %q account %q secret %q period %d digits %v alg %v",
					key.Type(), key.Issuer(), key.AccountName(), key.Secret(), key.Period(), key.Digits(), key.Algorithm())
			}
		})
	}
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
		got, err := Code(rfcSecret, time.Unix(tt.unix, 0))
		if err != nil || got != tt.want {
			t.Errorf("Code(t=%d) = %q, %v; want %q", tt.unix, got, err, tt.want)
		}
		step, ok := Verify(rfcSecret, tt.want, time.Unix(tt.unix, 0), 0)
		if !ok || step != uint64(tt.unix/30) {
			t.Errorf("Verify(t=%d) = %d, %v; want %d, true", tt.unix, step, ok, tt.unix/30)
		}
	}
	if _, err := Code(nil, time.Now()); err == nil {
		t.Error("Code(nil secret) succeeded")
	}
	if _, err := Code(rfcSecret, time.Unix(-1, 0)); err == nil {
		t.Error("Code(before 1970) succeeded")
	}
}

// TestCodeMatchesOathtool compares Code and Verify with oathtool (OATH
// Toolkit) and with an independent pquerna/otp totp computation.
func TestCodeMatchesOathtool(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, off := range []time.Duration{0, -30 * time.Second, 30 * time.Second} {
		at := now.Add(off)
		want := oathtool(t, secret, at)
		got, err := Code(secret, at)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("offset %v: Code = %q, oathtool = %q", off, got, want)
		}
		indep, err := totp.GenerateCodeCustom(EncodeSecret(secret), at, totp.ValidateOpts{
			Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil || indep != want {
			t.Errorf("offset %v: pquerna totp = %q, %v; oathtool = %q", off, indep, err, want)
		}
		// The oathtool code verifies at "now" with skew 1, and reports its step.
		step, ok := Verify(secret, want, now, 1)
		wantStep, _ := Step(at)
		if !ok || step != wantStep {
			// A collision between neighbouring steps (1e-6) would pick the later step.
			t.Errorf("offset %v: Verify(oathtool code, now, 1) = %d, %v; want %d, true", off, step, ok, wantStep)
		}
	}
	// Codes two steps away do not verify with skew 1.
	for _, off := range []time.Duration{-60 * time.Second, 60 * time.Second} {
		far := oathtool(t, secret, now.Add(off))
		near := map[string]bool{}
		for _, o := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
			c, _ := Code(secret, now.Add(o))
			near[c] = true
		}
		if near[far] {
			continue // same code in the window by chance
		}
		if _, ok := Verify(secret, far, now, 1); ok {
			t.Errorf("code from %v verified with skew 1", off)
		}
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1111111111, 0) // code 050471 at step 37037037
	const step = 37037037
	prev, _ := Code(rfcSecret, at.Add(-30*time.Second))
	next, _ := Code(rfcSecret, at.Add(30*time.Second))
	far, _ := Code(rfcSecret, at.Add(60*time.Second))
	tests := []struct {
		name     string
		secret   []byte
		code     string
		skew     int
		wantStep uint64
		wantOK   bool
	}{
		{"exact", rfcSecret, "050471", 0, step, true},
		{"exact with skew", rfcSecret, "050471", 1, step, true},
		{"previous step", rfcSecret, prev, 1, step - 1, true},
		{"next step", rfcSecret, next, 1, step + 1, true},
		{"previous step without skew", rfcSecret, prev, 0, 0, false},
		{"two steps ahead", rfcSecret, far, 1, 0, false},
		{"two steps ahead with skew 2", rfcSecret, far, 2, step + 2, true},
		{"negative skew is zero", rfcSecret, prev, -5, 0, false},
		{"wrong code", rfcSecret, "123456", 1, 0, false},
		{"leading space", rfcSecret, " 050471", 1, 0, false},
		{"trailing newline", rfcSecret, "050471\n", 1, 0, false},
		{"inner space", rfcSecret, "050 471", 1, 0, false},
		{"five digits", rfcSecret, "50471", 1, 0, false},
		{"eight digits", rfcSecret, "07081804", 1, 0, false},
		{"letters", rfcSecret, "05047a", 1, 0, false},
		{"full-width digits", rfcSecret, "０５０４７１", 1, 0, false},
		{"empty code", rfcSecret, "", 1, 0, false},
		{"empty secret", nil, "050471", 1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStep, ok := Verify(tt.secret, tt.code, at, tt.skew)
			if ok != tt.wantOK || gotStep != tt.wantStep {
				t.Fatalf("Verify(%q, skew %d) = %d, %v; want %d, %v", tt.code, tt.skew, gotStep, ok, tt.wantStep, tt.wantOK)
			}
		})
	}
}

func TestVerifyNearEpoch(t *testing.T) {
	// Step 0 with skew 1 must not wrap around to step 2^64-1.
	code, err := Code(rfcSecret, time.Unix(10, 0))
	if err != nil {
		t.Fatal(err)
	}
	step, ok := Verify(rfcSecret, code, time.Unix(10, 0), 1)
	if !ok || step != 0 {
		t.Fatalf("Verify at step 0 = %d, %v", step, ok)
	}
	if _, ok := Verify(rfcSecret, code, time.Unix(-100, 0), 1); ok {
		t.Fatal("Verify before 1970 succeeded")
	}
}
