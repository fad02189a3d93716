package enroll

import (
	"bytes"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll/recovery"
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

// FuzzVerify: only 6-digit codes can verify, and a verified step lies in the window.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("12345678901234567890"), "287082", int64(59), 1)
	f.Fuzz(func(t *testing.T, secret []byte, code string, unix int64, skew int) {
		at := time.Unix(unix, 0)
		step, ok := Verify(secret, code, at, skew)
		if !ok {
			return
		}
		if !recovery.IsDigits(code, 6) {
			t.Fatalf("code %q verified", code)
		}
		now, _ := Step(at)
		s := uint64(max(0, min(skew, MaxSkew)))
		if step+s < now || step > now+s {
			t.Fatalf("step %d outside window around %d (skew %d)", step, now, skew)
		}
	})
}
