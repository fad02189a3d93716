package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"time"
)

// MaxSkew is the widest window Match searches: time steps either side of
// now. It is the one limit for [auth] skew (config validation and auth
// both refuse more); RFC 6238 §5.2 recommends one step.
const MaxSkew = 2

// Match reports whether code is the code of secret at one of the time steps
// T-skew .. T+skew around t, and which step matched: the highest one when
// the code of two steps is the same, so that it counts as used for both.
// The code must be exactly Digits ASCII digits: no trimming, no spaces.
// Every step of the window is computed and compared without an early exit
// and the result selected without a branch, so the timing does not depend
// on which step, if any, matched. Near the epoch the window is clipped, not
// wrapped. skew is clamped to 0..MaxSkew.
//
// It fails for an empty secret and for times before 1970. The caller must
// refuse steps at or below the last one it accepted (replay).
func (p Params) Match(secret []byte, code string, t time.Time, skew int) (step uint64, ok bool, err error) {
	digits := p.Digits()
	if !IsDigits(code, digits) {
		return 0, false, nil
	}
	if len(secret) == 0 {
		return 0, false, errEmptySecret
	}
	if t.Unix() < 0 {
		return 0, false, errBefore1970
	}
	cur := p.Step(t)
	skew = max(0, min(skew, MaxSkew))
	var mac hash.Hash // nil: SHA1, with pads on the stack
	var pads sha1Pads
	useSHA1 := p.alg == algSHA1
	if useSHA1 {
		pads = newSHA1Pads(secret)
		defer pads.clear()
	} else {
		mac = hmac.New(p.alg.newHash(), secret)
	}
	var found int
	var want [10]byte
	for d := -skew; d <= skew; d++ {
		if d < 0 && uint64(-d) > cur {
			continue // before the epoch; depends on the clock, not the code
		}
		s := uint64(int64(cur) + int64(d))
		var w []byte
		if useSHA1 {
			w = pads.code(s, digits, want[:0])
		} else {
			w = hotpCode(mac, s, digits, want[:0])
		}
		eq := subtle.ConstantTimeCompare(w, []byte(code))
		mask := -uint64(eq) // all ones when equal
		step = step&^mask | s&mask
		found |= eq
	}
	return step, found == 1, nil
}

// IsDigits reports whether s is exactly n ASCII digits: the strict shape of
// a code (no spaces, signs or other scripts' digits).
func IsDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// newHash is the hash of the SHA-2 algorithms (SHA1 has its own path,
// sha1Pads).
func (a algorithm) newHash() func() hash.Hash {
	if a == algSHA512 {
		return sha512.New
	}
	return sha256.New
}

// hotpCode appends to dst the RFC 4226 code of counter under mac (an HMAC
// keyed with the secret, reset here), digits long with leading zeros,
// without per-call allocations beyond the HMAC's own.
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
