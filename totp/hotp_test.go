package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base32"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// TestHOTPCodeMatchesPquerna: hotpCode and sha1Pads.code (used by Match)
// and Code give the same codes as pquerna/otp (an independent
// implementation) for every algorithm and length we accept, over random
// secrets (up to 128 octets: longer than an HMAC block is hashed first) and
// counters.
func TestHOTPCodeMatchesPquerna(t *testing.T) {
	for _, alg := range []otp.Algorithm{otp.AlgorithmSHA1, otp.AlgorithmSHA256, otp.AlgorithmSHA512} {
		for _, digits := range []otp.Digits{otp.DigitsSix, otp.DigitsEight} {
			p := params(t, alg.String(), digits.Length(), 30)
			for i := range 300 {
				secret := make([]byte, 10+i%119)
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
				if alg == otp.AlgorithmSHA1 {
					if got := string(sha1Code(secret, counter, digits.Length())); got != want {
						t.Fatalf("SHA1 on the stack, %d-octet secret, counter %d: got %q, want %q", len(secret), counter, got, want)
					}
				}
				if got := p.Code(secret, counter); got != want {
					t.Fatalf("Code %v/%d counter %d: got %q, want %q", alg, digits.Length(), counter, got, want)
				}
			}
		}
	}
}

// BenchmarkHOTPCode: one code, HMAC-SHA1 on the stack against hmac.New (run
// both: go test ./totp -run '^$' -bench HOTPCode -benchmem).
func BenchmarkHOTPCode(b *testing.B) {
	secret := make([]byte, 20)
	rand.Read(secret)
	b.Run("stack", func(b *testing.B) {
		b.ReportAllocs()
		var dst [8]byte
		for i := range b.N {
			pads := newSHA1Pads(secret)
			pads.code(uint64(i), 6, dst[:0])
		}
	})
	b.Run("hmac.New", func(b *testing.B) {
		b.ReportAllocs()
		var dst [8]byte
		for i := range b.N {
			hotpCode(hmac.New(sha1.New, secret), uint64(i), 6, dst[:0])
		}
	})
}

// BenchmarkMatch: one login's code check (skew 1: three codes) for a wrong
// code, which computes as much as a right one.
func BenchmarkMatch(b *testing.B) {
	secret := []byte("12345678901234567890")
	at := time.Unix(1111111111, 0)
	for _, alg := range []string{"SHA1", "SHA256"} {
		p := params(b, alg, 6, 30)
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, ok, err := p.Match(secret, "000000", at, 1); ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

func sha1Code(secret []byte, counter uint64, digits int) []byte {
	pads := newSHA1Pads(secret)
	return pads.code(counter, digits, nil)
}
