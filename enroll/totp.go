// Package enroll turns a user into a TOTP user: it makes the secret, the
// otpauth:// URI (Google Authenticator "Key Uri Format"), the QR code for a
// terminal or a PNG file, and runs the enrollment dialogue (Flow): show the
// pending secret, send a code from the user's app to the server, which
// activates the token only if the code checks, and show the recovery codes.
//
// Tokens are totp.Default (SHA1, 6 digits, 30 seconds) unless the caller
// asks for other totp.Params (Flow.Params): the default is the only set all
// common apps honour (Google Authenticator ignores the algorithm, digits and
// period parameters on some platforms). Codes are computed and checked with
// package totp, never here.
//
// Secrets are credentials: nothing here logs them or puts them in an error.
package enroll

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/otpgate/otpgate/totp"
)

// Secret sizes otpgate issues and accepts.
const (
	SecretSize    = 20 // bytes; 160 bits, RFC 4226 R6 recommendation
	MinSecretSize = 16 // bytes; 128 bits, RFC 4226 R6 minimum
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

// URI returns the otpauth:// URI for a TOTP token with parameters p:
//
//	otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
//
// Issuer and account are percent-encoded (spaces as %20, never '+'). The
// Key Uri Format forbids ':' in both, so URI refuses it, as well as empty
// values, control characters and secrets under MinSecretSize bytes.
func URI(issuer, account string, secret []byte, p totp.Params) (string, error) {
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
	fmt.Fprintf(&b, "&algorithm=%s&digits=%d&period=%d", p.Algorithm(), p.Digits(), p.Period())
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
