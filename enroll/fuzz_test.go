package enroll

import (
	"bytes"
	"testing"
)

// FuzzDecodeSecret: no panics; whatever is accepted is at least 16 bytes and
// round-trips through EncodeSecret.
func FuzzDecodeSecret(f *testing.F) {
	f.Add("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ")
	f.Add("gezdgnbvgy3tqojqgezdgnbvgy======")
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := DecodeSecret(s)
		if err != nil {
			return
		}
		if len(raw) < MinSecretSize {
			t.Fatalf("accepted %d bytes", len(raw))
		}
		back, err := DecodeSecret(EncodeSecret(raw))
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("round trip: %x vs %x, %v", back, raw, err)
		}
	})
}
