package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base32"
	"testing"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TestHOTPCodeMatchesPquerna: hotpCode (used by matchStep) gives the same
// codes as pquerna/otp for every algorithm and length we accept, over
// random secrets and counters.
func TestHOTPCodeMatchesPquerna(t *testing.T) {
	for _, alg := range []otp.Algorithm{otp.AlgorithmSHA1, otp.AlgorithmSHA256, otp.AlgorithmSHA512} {
		for _, digits := range []otp.Digits{otp.DigitsSix, otp.DigitsEight} {
			for i := range 300 {
				secret := make([]byte, 10+i%55)
				rand.Read(secret)
				var c [8]byte
				rand.Read(c[:])
				counter := uint64(c[0])<<40 | uint64(c[1])<<8 | uint64(c[2]) | uint64(i)
				want, err := hotp.GenerateCodeCustom(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret), counter,
					hotp.ValidateOpts{Digits: digits, Algorithm: alg})
				if err != nil {
					t.Fatal(err)
				}
				got := string(hotpCode(hmac.New(alg.Hash, secret), counter, digits.Length(), nil))
				if got != want {
					t.Fatalf("%v/%d counter %d: got %q, want %q", alg, digits.Length(), counter, got, want)
				}
			}
		}
	}
}
