package enroll

import (
	"bytes"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/pquerna/otp"

	"github.com/otpgate/otpgate/totp"
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
	sha256x8, err := totp.NewParams("SHA256", 8, 30)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, issuer, account string
		secret                []byte
		params                totp.Params // zero: totp.Default
		want                  string      // "" = don't compare the string
		wantErr               string
	}{
		{name: "plain", issuer: "otpgate", account: "alice", secret: secret,
			want: "otpauth://totp/otpgate:alice?secret=" + b32 + "&issuer=otpgate&algorithm=SHA1&digits=6&period=30"},
		{name: "spaces and email", issuer: "ACME Co", account: "john.doe@email.com", secret: secret,
			want: "otpauth://totp/ACME%20Co:john.doe@email.com?secret=" + b32 + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"},
		{name: "8 digits, SHA256", issuer: "otpgate", account: "alice", secret: secret, params: sha256x8,
			want: "otpauth://totp/otpgate:alice?secret=" + b32 + "&issuer=otpgate&algorithm=SHA256&digits=8&period=30"},
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
			got, err := URI(tt.issuer, tt.account, tt.secret, tt.params)
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
			p := tt.params
			wantQ := map[string]string{"secret": b32, "issuer": tt.issuer, "algorithm": p.Algorithm(),
				"digits": strconv.Itoa(p.Digits()), "period": strconv.Itoa(p.Period())}
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
				key.Secret() != b32 || key.Period() != uint64(p.Period()) || key.Digits().Length() != p.Digits() ||
				key.Algorithm().String() != p.Algorithm() {
				t.Errorf("pquerna key: type %q issuer %q account %q secret %q period %d digits %v alg %v",
					key.Type(), key.Issuer(), key.AccountName(), key.Secret(), key.Period(), key.Digits(), key.Algorithm())
			}
		})
	}
}
