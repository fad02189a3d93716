package totp

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultPeriod is the period of Default, in seconds.
const DefaultPeriod = 30

// Params are a token's parameters. The zero value is Default; other values
// come from NewParams, so a Params is always valid. Params are comparable:
// equal parameters are equal values.
type Params struct {
	alg    algorithm // zero: SHA1
	eight  bool      // 8 digits, else 6
	period int       // seconds; zero: DefaultPeriod
}

// Default is SHA1, 6 digits, 30 s: the parameters every authenticator app
// honours (some ignore the algorithm, digits and period of an otpauth URI).
var Default = Params{}

type algorithm uint8

const (
	algSHA1 algorithm = iota
	algSHA256
	algSHA512
)

var algNames = [...]string{algSHA1: "SHA1", algSHA256: "SHA256", algSHA512: "SHA512"}

// NewParams checks a token's parameters as the store keeps them: algorithm
// "SHA1", "SHA256" or "SHA512" in any case ("" = SHA1), digits 6 or 8
// (0 = 6), period in seconds (0 = DefaultPeriod).
func NewParams(algorithm string, digits, period int) (Params, error) {
	var p Params
	switch strings.ToUpper(algorithm) {
	case "", "SHA1":
		p.alg = algSHA1
	case "SHA256":
		p.alg = algSHA256
	case "SHA512":
		p.alg = algSHA512
	default:
		return Params{}, fmt.Errorf("totp: unsupported algorithm %q", algorithm)
	}
	switch digits {
	case 0, 6:
	case 8:
		p.eight = true
	default:
		return Params{}, fmt.Errorf("totp: unsupported digits %d (want 6 or 8)", digits)
	}
	if period < 0 {
		return Params{}, fmt.Errorf("totp: invalid period %d", period)
	}
	if period != DefaultPeriod {
		p.period = period
	}
	return p, nil
}

// Algorithm is the HMAC hash: "SHA1", "SHA256" or "SHA512".
func (p Params) Algorithm() string { return algNames[p.alg] }

// Digits is the code length, 6 or 8.
func (p Params) Digits() int {
	if p.eight {
		return 8
	}
	return 6
}

// Period is the length of a time step in seconds.
func (p Params) Period() int {
	if p.period == 0 {
		return DefaultPeriod
	}
	return p.period
}

// Step returns the time step t falls in. Times before 1970 are step 0
// (CodeAt and Match refuse them).
func (p Params) Step(t time.Time) uint64 {
	return uint64(max(t.Unix(), 0)) / uint64(p.Period())
}

// StepStart returns when time step s begins.
func (p Params) StepStart(s uint64) time.Time {
	return time.Unix(int64(s*uint64(p.Period())), 0)
}

// Code returns the code of secret for time step s: its RFC 4226 HOTP value
// with s as the counter, Digits long with leading zeros.
func (p Params) Code(secret []byte, s uint64) string {
	var buf [10]byte
	if p.alg == algSHA1 {
		pads := newSHA1Pads(secret)
		defer pads.clear()
		return string(pads.code(s, p.Digits(), buf[:0]))
	}
	return string(hotpCode(hmac.New(p.alg.newHash(), secret), s, p.Digits(), buf[:0]))
}

// CodeAt returns the code of secret at time t. It fails for an empty
// secret and for times before 1970.
func (p Params) CodeAt(secret []byte, t time.Time) (string, error) {
	if len(secret) == 0 {
		return "", errEmptySecret
	}
	if t.Unix() < 0 {
		return "", errBefore1970
	}
	return p.Code(secret, p.Step(t)), nil
}

var (
	errEmptySecret = errors.New("totp: empty secret")
	errBefore1970  = errors.New("totp: time before 1970")
)
