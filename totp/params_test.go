package totp

import (
	"testing"
	"time"
)

// params is NewParams for parameters a test knows to be valid.
func params(t testing.TB, algorithm string, digits, period int) Params {
	t.Helper()
	p, err := NewParams(algorithm, digits, period)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNewParams: stored settings map to Params, zero values to the defaults.
func TestNewParams(t *testing.T) {
	tests := []struct {
		algorithm      string
		digits, period int
		want           [3]any // Algorithm, Digits, Period
	}{
		{"", 0, 0, [3]any{"SHA1", 6, 30}},
		{"sha1", 6, 30, [3]any{"SHA1", 6, 30}},
		{"Sha256", 8, 30, [3]any{"SHA256", 8, 30}},
		{"SHA512", 8, 60, [3]any{"SHA512", 8, 60}},
	}
	for _, tt := range tests {
		p := params(t, tt.algorithm, tt.digits, tt.period)
		if got := [3]any{p.Algorithm(), p.Digits(), p.Period()}; got != tt.want {
			t.Errorf("NewParams(%q, %d, %d) = %v, want %v", tt.algorithm, tt.digits, tt.period, got, tt.want)
		}
	}
	if d := Default; d.Algorithm() != "SHA1" || d.Digits() != 6 || d.Period() != DefaultPeriod {
		t.Errorf("Default = %s/%d/%d", d.Algorithm(), d.Digits(), d.Period())
	}
	if params(t, "sha1", 6, 30) != Default || params(t, "", 0, 0) != Default || params(t, "SHA256", 8, 30) == params(t, "SHA256", 8, 60) {
		t.Error("equal parameters are not equal Params, or different ones are")
	}
	// A 60-s token: step and step start use its period.
	p := params(t, "SHA1", 6, 60)
	if s := p.Step(time.Unix(119, 0)); s != 1 || !p.StepStart(2).Equal(time.Unix(120, 0)) {
		t.Errorf("60-s period: step %d, step 2 starts %v", s, p.StepStart(2))
	}
	if s := Default.Step(time.Unix(-100, 0)); s != 0 {
		t.Errorf("step before 1970: %d, want 0", s)
	}
}
