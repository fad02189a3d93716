package auth

import (
	"fmt"
	"time"

	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// tokenDigits is the code length of t (6 unless the token says 8).
func tokenDigits(t *store.TOTP) int {
	if t != nil && t.Digits == 8 {
		return 8
	}
	return 6
}

// matchStep checks code against the time steps T-skew..T+skew of token t at
// now in constant time and returns the highest matching step (see
// totp.Params.Match). The caller checks the step against t.LastStep.
func matchStep(t *store.TOTP, code string, now time.Time, skew int) (step uint64, ok bool, err error) {
	p, err := totp.NewParams(t.Algorithm, t.Digits, t.Period)
	if err != nil {
		return 0, false, fmt.Errorf("auth: %w", err)
	}
	step, ok, err = p.Match(t.Secret, code, now, skew)
	if err != nil {
		return 0, false, fmt.Errorf("auth: %w", err)
	}
	return step, ok, nil
}
