package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/otpgate/otpgate/store"

	"github.com/otpgate/otpgate/recovery"
)

// tokenDigits is the code length of t (6 unless the token says 8).
func tokenDigits(t *store.TOTP) int {
	if t != nil && t.Digits == 8 {
		return 8
	}
	return 6
}

// tokenOpts maps the stored token parameters to pquerna/otp options, set
// explicitly (pquerna's defaults are not applied everywhere).
func tokenOpts(t *store.TOTP) (hotp.ValidateOpts, uint64, error) {
	var o hotp.ValidateOpts
	switch t.Digits {
	case 0, 6:
		o.Digits = otp.DigitsSix
	case 8:
		o.Digits = otp.DigitsEight
	default:
		return o, 0, fmt.Errorf("auth: unsupported totp digits %d", t.Digits)
	}
	switch strings.ToUpper(t.Algorithm) {
	case "", "SHA1":
		o.Algorithm = otp.AlgorithmSHA1
	case "SHA256":
		o.Algorithm = otp.AlgorithmSHA256
	case "SHA512":
		o.Algorithm = otp.AlgorithmSHA512
	default:
		return o, 0, fmt.Errorf("auth: unsupported totp algorithm %q", t.Algorithm)
	}
	period := uint64(30)
	if t.Period > 0 {
		period = uint64(t.Period)
	} else if t.Period < 0 {
		return o, 0, fmt.Errorf("auth: invalid totp period %d", t.Period)
	}
	return o, period, nil
}

// matchStep checks code against every time step T-skew..T+skew of token t at
// now. It computes and compares all of them (no early exit, constant-time
// compare and select) and returns the highest matching step. The caller
// checks the step against t.LastStep.
func matchStep(t *store.TOTP, code string, now time.Time, skew int) (step uint64, ok bool, err error) {
	opts, period, err := tokenOpts(t)
	if err != nil {
		return 0, false, err
	}
	if !recovery.IsDigits(code, opts.Digits.Length()) {
		return 0, false, nil
	}
	if len(t.Secret) == 0 {
		return 0, false, fmt.Errorf("auth: empty totp secret")
	}
	unix := now.Unix()
	if unix < 0 {
		return 0, false, fmt.Errorf("auth: clock before 1970")
	}
	var mac hash.Hash // nil: SHA1, on the stack
	if opts.Algorithm != otp.AlgorithmSHA1 {
		mac = hmac.New(opts.Algorithm.Hash, t.Secret)
	}
	cur := uint64(unix) / period
	var found int
	var want [10]byte
	for d := -skew; d <= skew; d++ {
		if d < 0 && uint64(-d) > cur {
			continue // before the epoch
		}
		s := uint64(int64(cur) + int64(d))
		var w []byte
		if mac == nil {
			w = hotpCodeSHA1(t.Secret, s, opts.Digits.Length(), want[:0])
		} else {
			w = hotpCode(mac, s, opts.Digits.Length(), want[:0])
		}
		eq := subtle.ConstantTimeCompare(w, []byte(code))
		mask := -uint64(eq) // all ones when equal
		step = step&^mask | s&mask
		found |= eq
	}
	return step, found == 1, nil
}

// hotpCode appends to dst the RFC 4226 code of counter under mac (an HMAC
// keyed with the secret, reset here), digits long with leading zeros: the
// same codes as hotp.GenerateCodeCustom, without its base32 round trip and
// per-call allocations.
func hotpCode(mac hash.Hash, counter uint64, digits int, dst []byte) []byte {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Reset()
	mac.Write(msg[:])
	var buf [64]byte
	return truncateCode(mac.Sum(buf[:0]), digits, dst)
}

// hotpCodeSHA1 is hotpCode for HMAC-SHA1, the algorithm of nearly every
// token, with the HMAC on the stack: hmac.New and the state it saves at
// Reset allocated about 400 bytes per code check.
func hotpCodeSHA1(key []byte, counter uint64, digits int, dst []byte) []byte {
	sum := hmacSHA1Counter(key, counter)
	return truncateCode(sum[:], digits, dst)
}

// hmacSHA1Counter is HMAC-SHA1(key, counter as 8 octets big endian), RFC 2104.
func hmacSHA1Counter(key []byte, counter uint64) [sha1.Size]byte {
	const block = 64
	var k [block]byte
	if len(key) > block {
		h := sha1.Sum(key)
		copy(k[:], h[:])
	} else {
		copy(k[:], key)
	}
	var in [block + 8]byte
	for i, b := range k {
		in[i] = b ^ 0x36
	}
	binary.BigEndian.PutUint64(in[block:], counter)
	inner := sha1.Sum(in[:])
	var out [block + sha1.Size]byte
	for i, b := range k {
		out[i] = b ^ 0x5c
	}
	copy(out[block:], inner[:])
	clear(k[:])
	clear(in[:block])
	sum := sha1.Sum(out[:])
	clear(out[:block])
	return sum
}

// truncateCode appends to dst the RFC 4226 dynamic truncation of an HMAC
// sum, digits long with leading zeros.
func truncateCode(sum []byte, digits int, dst []byte) []byte {
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	start := len(dst)
	for range digits {
		dst = append(dst, 0)
	}
	for i := len(dst) - 1; i >= start; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
	return dst
}
