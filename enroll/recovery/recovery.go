// Package recovery generates and parses otpgate recovery codes.
//
// A recovery code replaces a TOTP code once, for a user who lost the phone.
// Our codes look like "k7qd-2mxa-pz4f-c3rt": 16 characters of the lowercase
// RFC 4648 base32 alphabet (a-z, 2-7), 80 bits from crypto/rand, in four
// dashed groups. Codes imported from ~/.google_authenticator are 8-digit
// "scratch codes"; Normalize accepts both shapes. The store keeps only
// store.HashRecoveryCode(name, normalized), never the code.
//
// Where a recovery code may ride at the end of a password (the RADIUS
// "append" flow, User-Password = password + code), only our dashed shape is
// recognised (SplitSuffix): an 8-digit scratch code at the end of a password
// cannot be told apart from a password ending in digits followed by a TOTP
// code, so scratch codes are accepted only where the field holds the code
// alone (challenge and otp-only flows).
package recovery

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/otpgate/otpgate/totp"
)

const (
	// alphabet is the lowercase RFC 4648 base32 alphabet.
	alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	// rawLen is the length of a normalized code: 16 base32 chars = 80 bits.
	rawLen = 16
	// DashedLen is the length of a code as shown: xxxx-xxxx-xxxx-xxxx.
	DashedLen = rawLen + 3
	// ScratchLen is the length of a google-authenticator scratch code.
	ScratchLen = 8
	// maxCodes bounds Generate so a typo cannot ask for a huge allocation.
	maxCodes = 1000
)

var encoding = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// Generate returns n distinct recovery codes shaped xxxx-xxxx-xxxx-xxxx.
func Generate(n int) ([]string, error) {
	if n < 0 || n > maxCodes {
		return nil, fmt.Errorf("recovery: generate: count %d out of range 0..%d", n, maxCodes)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]struct{}, n)
	var buf [rawLen * 5 / 8]byte // 10 bytes = 80 bits
	for len(codes) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return nil, fmt.Errorf("recovery: generate: %w", err)
		}
		raw := encoding.EncodeToString(buf[:])
		if _, dup := seen[raw]; dup {
			continue // 2^-80 per pair; kept so uniqueness is a guarantee
		}
		seen[raw] = struct{}{}
		codes = append(codes, dash(raw))
	}
	return codes, nil
}

// dash formats a 16-char normalized code as xxxx-xxxx-xxxx-xxxx.
func dash(raw string) string {
	return raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16]
}

// Normalize returns the canonical form of s (lowercase, without '-' and ' ')
// and whether that form is a recovery code: 16 characters of the base32
// alphabet (our shape) or 8 ASCII digits (a google-authenticator scratch
// code). The canonical form is what store.HashRecoveryCode takes.
func Normalize(s string) (string, bool) {
	if len(s) > 4*DashedLen { // refuse huge inputs before allocating
		return "", false
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	n := b.String()
	return n, isOurs(n) || isScratch(n)
}

// isOurs reports whether n is 16 chars of the lowercase base32 alphabet.
func isOurs(n string) bool {
	if len(n) != rawLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !inAlphabet(n[i]) {
			return false
		}
	}
	return true
}

// isScratch reports whether n is 8 ASCII digits.
func isScratch(n string) bool { return totp.IsDigits(n, ScratchLen) }

func inAlphabet(c byte) bool {
	return ('a' <= c && c <= 'z') || ('2' <= c && c <= '7')
}

// SplitSuffix looks for a recovery code in our dashed shape at the end of
// field (the append flow: password + code). It returns the text before the
// code, the code in canonical form (as Normalize returns it) and ok=true when
// the last 19 characters are xxxx-xxxx-xxxx-xxxx (letters in either case).
// The prefix may be empty (the field holds only the code).
//
// Google-authenticator scratch codes (8 digits) are never split off: they are
// accepted only where the field holds the code alone; use Normalize there.
func SplitSuffix(field string) (prefix, code string, ok bool) {
	if len(field) < DashedLen {
		return "", "", false
	}
	cut := len(field) - DashedLen
	tail := field[cut:]
	var raw [rawLen]byte
	j := 0
	for i := 0; i < DashedLen; i++ {
		c := tail[i]
		if i == 4 || i == 9 || i == 14 {
			if c != '-' {
				return "", "", false
			}
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !inAlphabet(c) {
			return "", "", false
		}
		raw[j] = c
		j++
	}
	return field[:cut], string(raw[:]), true
}
