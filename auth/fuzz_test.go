package auth

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeUserBackoff: whatever a shared store hands back, decoding
// does not panic, and what decodes encodes back to a value that decodes
// to the same encoding (auth's own writes compare equal).
func FuzzDecodeUserBackoff(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	r := backoffRulesOf(testOptions(), 2)
	var b userBackoff
	for _, st := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		b.settle(r, st, pwFailed, now)
	}
	f.Add(b.encode())
	f.Add([]byte{backoffFormat, 0, 0})
	f.Add([]byte{backoffFormat, 1, 3, 'a', 'b', 'c', 1, 2, 0, 1, 5, 4, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeUserBackoff(data)
		if err != nil {
			return
		}
		enc := b.encode()
		again, err := decodeUserBackoff(enc)
		if err != nil {
			t.Fatalf("auth's own encoding %x does not decode: %v", enc, err)
		}
		if !bytes.Equal(again.encode(), enc) {
			t.Fatalf("encoding not stable: %x then %x", enc, again.encode())
		}
	})
}
