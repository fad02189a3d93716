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

	"github.com/otpgate/otpgate/enroll/recovery"
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
	var mac hash.Hash // nil: SHA1, with pads on the stack
	var pads sha1Pads
	useSHA1 := opts.Algorithm == otp.AlgorithmSHA1
	if useSHA1 {
		pads = newSHA1Pads(t.Secret)
		defer pads.clear()
	} else {
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
		if useSHA1 {
			w = pads.code(s, opts.Digits.Length(), want[:0])
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

// sha1Pads is an HMAC-SHA1 key (RFC 2104) made ready once per code check:
// the key XOR ipad and opad blocks, with room behind each for what is
// hashed after it. Everything stays on the stack: hmac.New and the state
// it saves at Reset allocated about 400 bytes per check. SHA1 is the
// algorithm of nearly every token.
type sha1Pads struct {
	inner [sha1Block + 8]byte         // key ^ ipad, counter
	outer [sha1Block + sha1.Size]byte // key ^ opad, inner hash
}

const sha1Block = 64

func newSHA1Pads(key []byte) (p sha1Pads) {
	var k [sha1Block]byte
	if len(key) > sha1Block {
		h := sha1.Sum(key)
		copy(k[:], h[:])
	} else {
		copy(k[:], key)
	}
	for i, b := range k {
		p.inner[i] = b ^ 0x36
		p.outer[i] = b ^ 0x5c
	}
	clear(k[:])
	return p
}

// code is hotpCode for HMAC-SHA1 under these pads.
func (p *sha1Pads) code(counter uint64, digits int, dst []byte) []byte {
	binary.BigEndian.PutUint64(p.inner[sha1Block:], counter)
	inner := sha1.Sum(p.inner[:])
	copy(p.outer[sha1Block:], inner[:])
	sum := sha1.Sum(p.outer[:])
	return truncateCode(sum[:], digits, dst)
}

// clear wipes the key material.
func (p *sha1Pads) clear() { *p = sha1Pads{} }

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
