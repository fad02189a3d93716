package loadgen

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"time"
)

// Period is the RFC 6238 time step the generator assumes (30 s, SHA-1, 6 digits,
// the defaults of otpgate and of every authenticator app).
const Period = 30

// Step returns the RFC 6238 time step of t.
func Step(t time.Time) uint64 { return uint64(t.Unix()) / Period }

// StepStart returns when step s begins.
func StepStart(s uint64) time.Time { return time.Unix(int64(s*Period), 0) }

// Code returns the 6-digit HOTP value (RFC 4226 §5.3) of key at counter step.
func Code(key []byte, step uint64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], step)
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	v %= 1000000
	var out [6]byte
	for i := 5; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
	return string(out[:])
}
