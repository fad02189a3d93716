// Package enroll turns a user into a TOTP user: it makes the secret, the
// otpauth:// URI (Google Authenticator "Key Uri Format"), the QR code for a
// terminal or a PNG file, and runs the enrollment dialogue (Flow): show the
// pending secret, send a code from the user's app to the server, which
// activates the token only if the code checks, and show the recovery codes.
//
// Every token otpgate issues is SHA1, 6 digits, 30 seconds: the only
// parameters all common apps honour (Google Authenticator ignores the
// algorithm, digits and period parameters on some platforms).
//
// Secrets are credentials: nothing here logs them or puts them in an error.
package enroll

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/otpgate/otpgate/enroll/recovery"
)

// Token parameters otpgate issues and verifies.
const (
	SecretSize    = 20 // bytes; 160 bits, RFC 4226 R6 recommendation
	MinSecretSize = 16 // bytes; 128 bits, RFC 4226 R6 minimum
	Digits        = 6
	Period        = 30 // seconds
	Algorithm     = "SHA1"
)

var b32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns SecretSize random bytes from crypto/rand.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("enroll: new secret: %w", err)
	}
	return s, nil
}

// EncodeSecret returns secret as upper-case base32 without padding, the form
// used in otpauth:// URIs and by oathtool -b.
func EncodeSecret(secret []byte) string {
	return b32NoPad.EncodeToString(secret)
}

// FormatSecret returns the base32 secret in groups of four separated by
// spaces, for typing into an app by hand when the QR code can't be scanned.
func FormatSecret(secret []byte) string {
	s := EncodeSecret(secret)
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// ErrSecretTooShort is returned by DecodeSecret for a key under 128 bits.
var ErrSecretTooShort = fmt.Errorf("secret shorter than %d bytes (128 bits, the RFC 4226 minimum)", MinSecretSize)

// ErrNotBase32 is returned by DecodeSecret for text that is not base32.
var ErrNotBase32 = errors.New("not base32")

// DecodeSecret parses a base32 secret the way people write them: any case,
// spaces, dashes and trailing '=' padding allowed. It fails with ErrNotBase32
// or ErrSecretTooShort (the error never contains the input).
func DecodeSecret(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '\t' || r == '-':
			return -1
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
	clean = strings.TrimRight(clean, "=")
	if clean == "" {
		return nil, ErrNotBase32
	}
	// encoding/base32 skips newlines and tolerates some impossible lengths;
	// be strict: only the alphabet, and lengths a byte string can have.
	for i := 0; i < len(clean); i++ {
		if c := clean[i]; !('A' <= c && c <= 'Z') && !('2' <= c && c <= '7') {
			return nil, ErrNotBase32
		}
	}
	switch len(clean) % 8 {
	case 1, 3, 6:
		return nil, ErrNotBase32
	}
	raw, err := b32NoPad.DecodeString(clean)
	if err != nil {
		return nil, ErrNotBase32
	}
	if len(raw) < MinSecretSize {
		return nil, ErrSecretTooShort
	}
	return raw, nil
}

// URI returns the otpauth:// URI for a TOTP token:
//
//	otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
//
// Issuer and account are percent-encoded (spaces as %20, never '+'). The
// Key Uri Format forbids ':' in both, so URI refuses it, as well as empty
// values, control characters and secrets under MinSecretSize bytes.
func URI(issuer, account string, secret []byte) (string, error) {
	if err := checkLabelPart("issuer", issuer); err != nil {
		return "", err
	}
	if err := checkLabelPart("account", account); err != nil {
		return "", err
	}
	if len(secret) < MinSecretSize {
		return "", fmt.Errorf("enroll: uri: %w", ErrSecretTooShort)
	}
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	b.WriteString(labelEscape(issuer))
	b.WriteByte(':')
	b.WriteString(labelEscape(account))
	b.WriteString("?secret=")
	b.WriteString(EncodeSecret(secret))
	b.WriteString("&issuer=")
	b.WriteString(queryEscape(issuer))
	fmt.Fprintf(&b, "&algorithm=%s&digits=%d&period=%d", Algorithm, Digits, Period)
	return b.String(), nil
}

// labelEscape escapes a label part for the URI path. '+' is escaped too:
// some apps decode the label like a form value and would turn it into a space.
func labelEscape(s string) string {
	return strings.ReplaceAll(url.PathEscape(s), "+", "%2B")
}

// queryEscape escapes a query value with spaces as %20: some apps do not
// decode '+' as a space.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

func checkLabelPart(what, s string) error {
	if s == "" {
		return fmt.Errorf("enroll: uri: %s is empty", what)
	}
	if strings.Contains(s, ":") {
		return fmt.Errorf("enroll: uri: %s %q contains ':' (not allowed in an otpauth label)", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("enroll: uri: %s %q contains a control character", what, s)
		}
	}
	return nil
}

var hotpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Step returns the RFC 6238 time step of t (T0 = 0, X = Period) and false
// for times before 1970.
func Step(t time.Time) (uint64, bool) {
	u := t.Unix()
	if u < 0 {
		return 0, false
	}
	return uint64(u) / Period, true
}

// Code returns the 6-digit code for secret at time t (SHA1, 30 s).
func Code(secret []byte, t time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("enroll: code: empty secret")
	}
	step, ok := Step(t)
	if !ok {
		return "", errors.New("enroll: code: time before 1970")
	}
	code, err := hotp.GenerateCodeCustom(EncodeSecret(secret), step, hotpOpts)
	if err != nil {
		return "", fmt.Errorf("enroll: code: %w", err)
	}
	return code, nil
}

// MaxSkew bounds the window Verify searches. RFC 6238 §5.2 recommends at
// most one step either side; callers should pass 0 or 1.
const MaxSkew = 10

// Verify reports whether code is the code of secret at one of the time steps
// T-skew .. T+skew around t, and which step matched (the latest one in the
// unlikely case that several do). The code must be exactly 6 ASCII digits: no
// trimming, no spaces. Every step in the window is computed and compared in
// constant time without an early exit, so the timing does not depend on
// which step (if any) matched. Callers must still refuse steps at or below
// the user's last accepted step (replay, RFC 6238 §5.2).
func Verify(secret []byte, code string, t time.Time, skew int) (step uint64, ok bool) {
	if len(secret) == 0 || !recovery.IsDigits(code, Digits) {
		return 0, false
	}
	now, valid := Step(t)
	if !valid {
		return 0, false
	}
	skew = max(0, min(skew, MaxSkew))
	b32 := EncodeSecret(secret)
	var matched uint64
	found := 0
	for d := -skew; d <= skew; d++ {
		if d < 0 && now < uint64(-d) {
			continue // before step 0; depends only on the clock, not the code
		}
		s := uint64(int64(now) + int64(d))
		want, err := hotp.GenerateCodeCustom(b32, s, hotpOpts)
		if err != nil {
			return 0, false
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		// matched = eq ? s : matched, without a branch on eq.
		mask := -uint64(eq)
		matched = (s & mask) | (matched &^ mask)
		found |= eq
	}
	return matched, found == 1
}
