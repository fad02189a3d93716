package auth

import (
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// TestDecayNotReappliedBySuccesses: the failure count decays by one per
// lockout_max since the last failure. A success must not apply that decay
// again and again from the same LastFailure: otherwise a few real logins
// after a quiet spell wipe the count and hand an attacker a fresh
// escalation (the very thing decay replaced the reset for).
func TestDecayNotReappliedBySuccesses(t *testing.T) {
	e := newEnv(t, nil) // lockout_max 4 h
	e.update("alice", func(u *store.User) {
		u.CodeFailures = 9
		u.LastFailure = e.clk.Now()
	})
	e.clk.Advance(8 * time.Hour) // two decay periods: 9 -> 7
	for i := range 4 {
		if d := e.auth(Request{User: "alice", Mode: ModeOTPOnly, Password: e.code("alice", 0)}); d.Result != Accept {
			t.Fatalf("login %d: %s/%s", i, d.Result, d.Reason)
		}
		e.clk.Advance(30 * time.Second)
	}
	if d := e.auth(Request{User: "alice", Mode: ModeOTPOnly, Password: e.wrongCode("alice")}); d.Reason != ReasonBadCode {
		t.Fatalf("wrong code: %s", d.Reason)
	}
	u := e.user("alice")
	if u.CodeFailures != 9-2+1 {
		t.Fatalf("after 8 h, 4 logins and a failure: CodeFailures = %d, want %d", u.CodeFailures, 9-2+1)
	}
	// 8 failures: the lock is base * 2^(8-5) = 4 min.
	if got := u.LockedUntil.Sub(e.clk.Now()); got != 4*time.Minute {
		t.Fatalf("lock %v, want 4m0s", got)
	}
}
