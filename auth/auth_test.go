package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

type step struct {
	mode    Mode
	user    string
	field   func(e *env) string
	state   func(e *env) []byte // nil: no State attribute
	client  string              // default "vpn"
	station string              // default "192.0.2.10"
	before  func(e *env)        // runs before the request (clock, store changes)
	want    Result
	reason  Reason
	check   func(t *testing.T, e *env, d Decision)
}

func lit(s string) func(*env) string { return func(*env) string { return s } }

// withCode is pw followed by user's code at offset steps from now.
func withCode(pw, user string, offset int) func(*env) string {
	return func(e *env) string { return pw + e.code(user, offset) }
}

func withWrongCode(pw, user string) func(*env) string {
	return func(e *env) string { return pw + e.wrongCode(user) }
}

func prevState(e *env) []byte { return e.prev.State }

func advance(d time.Duration) func(*env) { return func(e *env) { e.clk.Advance(d) } }

func lockUser(name string, failures int, until time.Duration) func(*env) {
	return func(e *env) {
		e.update(name, func(u *store.User) {
			u.CodeFailures = failures
			u.LockedUntil = e.clk.Now().Add(until)
		})
	}
}

func unlockUser(name string) func(*env) {
	return func(e *env) {
		e.update(name, func(u *store.User) { u.CodeFailures = 0; u.LockedUntil = time.Time{} })
	}
}

func wantChallenge(t *testing.T, _ *env, d Decision) {
	t.Helper()
	if len(d.State) < 16 {
		t.Errorf("State is %d bytes, want >= 16", len(d.State))
	}
	if d.Message == "" {
		t.Error("Challenge without a Message (pam_radius needs Reply-Message)")
	}
}

func wantNotEnrolledMsg(t *testing.T, _ *env, d Decision) {
	t.Helper()
	if d.Message != MsgNotEnrolled {
		t.Errorf("Message = %q, want %q", d.Message, MsgNotEnrolled)
	}
}

func wantNoMessage(t *testing.T, _ *env, d Decision) {
	t.Helper()
	if d.Message != "" {
		t.Errorf("Message = %q, want none", d.Message)
	}
}

func wantLastStep(user string, offset int) func(*testing.T, *env, Decision) {
	return func(t *testing.T, e *env, _ Decision) {
		t.Helper()
		u := e.user(user)
		want := uint64(e.clk.Now().Unix()/30 + int64(offset))
		if u.TOTP.LastStep != want {
			t.Errorf("LastStep = %d, want %d", u.TOTP.LastStep, want)
		}
	}
}

func optional(groups ...string) func(*Options) {
	return func(o *Options) { o.Policy = Policy{MFA: MFAOptional, MFAGroups: groups} }
}

func grace(d time.Duration) func(*Options) {
	return func(o *Options) { o.Policy.GraceUntil = t0.Add(d) }
}

func TestDecisions(t *testing.T) {
	tests := []struct {
		name  string
		opt   func(*Options)
		steps []step
	}{
		// ---- append ----
		{name: "append/accept", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK,
				check: func(t *testing.T, e *env, d Decision) {
					wantLastStep("alice", 0)(t, e, d)
					if u := e.user("alice"); !u.LastSuccess.Equal(t0) {
						t.Errorf("LastSuccess = %v, want %v", u.LastSuccess, t0)
					}
				}},
		}},
		{name: "append/wrong password", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct hors", "alice", 0), want: Reject, reason: ReasonBadPassword,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); u.CodeFailures != 0 || u.TOTP.LastStep != 0 {
						t.Errorf("wrong password touched the store: failures %d, last step %d", u.CodeFailures, u.TOTP.LastStep)
					}
				}},
		}},
		{name: "append/wrong code", steps: []step{
			{mode: ModeAppend, user: "alice", field: withWrongCode("correct horse", "alice"), want: Reject, reason: ReasonBadCode,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); u.CodeFailures != 1 || !u.LastFailure.Equal(t0) {
						t.Errorf("CodeFailures = %d, LastFailure = %v; want 1, %v", u.CodeFailures, u.LastFailure, t0)
					}
				}},
		}},
		{name: "append/reused code", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: advance(5 * time.Second), want: Reject, reason: ReasonCodeReused},
		}},
		{name: "append/older step after newer is reused", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 1), want: Accept, reason: ReasonOK, check: wantLastStep("alice", 1)},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Reject, reason: ReasonCodeReused},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", -1), want: Reject, reason: ReasonCodeReused},
		}},
		{name: "append/next step after accept", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: advance(30 * time.Second), want: Accept, reason: ReasonOK},
		}},
		{name: "append/+1 step", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 1), want: Accept, reason: ReasonOK, check: wantLastStep("alice", 1)},
		}},
		{name: "append/-1 step", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", -1), want: Accept, reason: ReasonOK, check: wantLastStep("alice", -1)},
		}},
		{name: "append/+2 steps rejected", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 2), want: Reject, reason: ReasonBadCode},
		}},
		{name: "append/-2 steps rejected", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", -2), want: Reject, reason: ReasonBadCode},
		}},
		{name: "append/skew 0 rejects +1", opt: func(o *Options) { o.Skew = 0 }, steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 1), want: Reject, reason: ReasonBadCode},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK},
		}},
		{name: "append/code with non-digits", steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse12345x"), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "append/missing code", steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse"), want: Reject, reason: ReasonBadCode,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); u.CodeFailures != 0 {
						t.Errorf("missing code counted as a guess: CodeFailures = %d", u.CodeFailures)
					}
				}},
		}},
		{name: "append/recovery once then reused", steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse" + rcAlice1), want: Accept, reason: ReasonRecoveryCode,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); len(u.RecoveryCodes) != 2 {
						t.Errorf("%d recovery codes left, want 2", len(u.RecoveryCodes))
					}
				}},
			{mode: ModeAppend, user: "alice", field: lit("correct horse" + rcAlice1), want: Reject, reason: ReasonBadCode},
			{mode: ModeAppend, user: "alice", field: lit("correct horse" + strings.ToUpper(rcAlice2)), want: Accept, reason: ReasonRecoveryCode},
		}},
		{name: "append/unknown recovery code", steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse" + rcOther), want: Reject, reason: ReasonBadCode},
		}},
		{name: "append/locked", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: lockUser("alice", 7, time.Minute), want: Reject, reason: ReasonLocked,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); u.TOTP.LastStep != 0 || u.CodeFailures != 7 {
						t.Errorf("locked request changed the store: last step %d, failures %d", u.TOTP.LastStep, u.CodeFailures)
					}
				}},
			{mode: ModeAppend, user: "alice", field: lit("correct horse" + rcAlice1), want: Reject, reason: ReasonLocked},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: unlockUser("alice"), want: Accept, reason: ReasonOK},
		}},
		{name: "append/lock expires", steps: []step{
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: lockUser("alice", 5, 30*time.Second), want: Reject, reason: ReasonLocked},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), before: advance(30 * time.Second), want: Accept, reason: ReasonOK,
				check: func(t *testing.T, e *env, _ Decision) {
					// Failures decay with time; a success clears only the lock.
					if u := e.user("alice"); u.CodeFailures != 5 || !u.LockedUntil.IsZero() {
						t.Errorf("success left failures %d, locked until %v; want 5, unlocked", u.CodeFailures, u.LockedUntil)
					}
				}},
		}},
		{name: "append/disabled", steps: []step{
			{mode: ModeAppend, user: "bob", field: withCode("bobpw", "bob", 0), want: Reject, reason: ReasonDisabled},
		}},
		{name: "append/unknown user", steps: []step{
			{mode: ModeAppend, user: "nobody", field: lit("whatever123456"), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "append/invalid user name", steps: []step{
			{mode: ModeAppend, user: "no body", field: lit("whatever123456"), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "append/empty user name", steps: []step{
			{mode: ModeAppend, user: "", field: lit("x"), want: Reject, reason: ReasonMalformed},
		}},
		{name: "append/not enrolled, required", steps: []step{
			{mode: ModeAppend, user: "carol", field: lit("carolpw"), want: Reject, reason: ReasonNotEnrolled, check: wantNotEnrolledMsg},
			{mode: ModeAppend, user: "carol", field: lit("wrong"), want: Reject, reason: ReasonBadPassword,
				check: func(t *testing.T, _ *env, d Decision) {
					if d.Message != "" {
						t.Errorf("wrong password got Message %q", d.Message)
					}
				}},
		}},
		{name: "append/not enrolled, optional", opt: optional("vpn-admins"), steps: []step{
			{mode: ModeAppend, user: "carol", field: lit("carolpw"), want: Accept, reason: ReasonNoMFARequired,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("carol"); !u.LastSuccess.Equal(t0) {
						t.Errorf("LastSuccess = %v", u.LastSuccess)
					}
				}},
			{mode: ModeAppend, user: "erin", field: lit("erin123456"), want: Accept, reason: ReasonNoMFARequired},
			{mode: ModeAppend, user: "carol", field: lit("carolpw123456"), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "append/not enrolled, optional, in group", opt: optional("vpn-admins"), steps: []step{
			{mode: ModeAppend, user: "dave", field: lit("davepw"), want: Reject, reason: ReasonNotEnrolled, check: wantNotEnrolledMsg},
		}},
		{name: "append/enrolled user needs code under optional", opt: optional(), steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse"), want: Reject, reason: ReasonBadCode},
			{mode: ModeAppend, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK},
		}},
		{name: "append/grace", opt: grace(time.Hour), steps: []step{
			{mode: ModeAppend, user: "carol", field: lit("carolpw"), want: Accept, reason: ReasonGrace},
			{mode: ModeAppend, user: "carol", field: lit("wrong"), want: Reject, reason: ReasonBadPassword},
			{mode: ModeAppend, user: "carol", field: lit("carolpw"), before: advance(time.Hour), want: Reject, reason: ReasonNotEnrolled},
		}},
		{name: "append/grace does not skip enrolled users' codes", opt: grace(time.Hour), steps: []step{
			{mode: ModeAppend, user: "alice", field: lit("correct horse"), want: Reject, reason: ReasonBadCode},
		}},
		{name: "append/user without password", steps: []step{
			// Only otp-only clients take the code alone (the NAS checked a
			// password); here it would be single-factor.
			{mode: ModeAppend, user: "otto", field: withCode("", "otto", 0), want: Reject, reason: ReasonNoPassword, check: wantNoMessage},
			{mode: ModeAppend, user: "otto", field: withCode("x", "otto", 0), want: Reject, reason: ReasonNoPassword, check: wantNoMessage},
		}},

		// ---- challenge ----
		{name: "challenge/accept", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK, check: wantChallenge},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, before: advance(20 * time.Second), want: Accept, reason: ReasonOK},
		}},
		{name: "challenge/password with digits is not split", steps: []step{
			{mode: ModeChallenge, user: "digit", field: lit("summer123456"), want: Challenge, reason: ReasonOK, check: wantChallenge},
			{mode: ModeChallenge, user: "digit", field: withCode("", "digit", 0), state: prevState, want: Accept, reason: ReasonOK},
		}},
		{name: "challenge/wrong password", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse!"), want: Reject, reason: ReasonBadPassword,
				check: func(t *testing.T, _ *env, d Decision) {
					if d.State != nil {
						t.Error("Reject carries a State")
					}
				}},
		}},
		{name: "challenge/wrong code consumes the State", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: func(e *env) string { return e.wrongCode("alice") }, state: prevState, want: Reject, reason: ReasonBadCode},
		}},
		{name: "challenge/reused State", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, want: Accept, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), before: advance(30 * time.Second),
				state: func(e *env) []byte { return e.lastState }, want: Reject, reason: ReasonBadState},
		}},
		{name: "challenge/reused code across challenges", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, want: Accept, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, want: Reject, reason: ReasonCodeReused},
		}},
		{name: "challenge/expired State", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, before: advance(testChallengeTTL), want: Reject, reason: ReasonBadState},
		}},
		{name: "challenge/State just before expiry", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, before: advance(testChallengeTTL - time.Second), want: Accept, reason: ReasonOK},
		}},
		{name: "challenge/State of another user", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "otto", field: withCode("", "otto", 0), state: prevState, want: Reject, reason: ReasonBadState},
		}},
		{name: "challenge/State of another client", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", client: "other-nas", field: withCode("", "alice", 0), state: prevState, want: Reject, reason: ReasonBadState},
		}},
		{name: "challenge/unknown State", steps: []step{
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), want: Reject, reason: ReasonBadState,
				state: func(*env) []byte { b := make([]byte, 16); _, _ = rand.Read(b); return b }},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), want: Reject, reason: ReasonBadState,
				state: func(*env) []byte { return []byte{1} }},
		}},
		{name: "challenge/recovery code answer once", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: lit(rcAlice1), state: prevState, want: Accept, reason: ReasonRecoveryCode},
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: lit(rcAlice1), state: prevState, want: Reject, reason: ReasonBadCode},
		}},
		{name: "challenge/scratch code answer", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: lit(rcScratch), state: prevState, want: Accept, reason: ReasonRecoveryCode},
		}},
		{name: "challenge/locked gets no challenge", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), before: lockUser("alice", 5, time.Minute), want: Reject, reason: ReasonLocked,
				check: func(t *testing.T, _ *env, d Decision) {
					if d.State != nil {
						t.Error("locked user got a State")
					}
				}},
		}},
		{name: "challenge/locked between challenge and answer", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState, before: lockUser("alice", 5, time.Minute), want: Reject, reason: ReasonLocked},
		}},
		{name: "challenge/disabled", steps: []step{
			{mode: ModeChallenge, user: "bob", field: lit("bobpw"), want: Reject, reason: ReasonDisabled},
		}},
		{name: "challenge/unknown user", steps: []step{
			{mode: ModeChallenge, user: "nobody", field: lit("pw"), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "challenge/not enrolled", steps: []step{
			{mode: ModeChallenge, user: "carol", field: lit("carolpw"), want: Reject, reason: ReasonNotEnrolled, check: wantNotEnrolledMsg},
		}},
		{name: "challenge/not enrolled, optional", opt: optional("vpn-admins"), steps: []step{
			{mode: ModeChallenge, user: "carol", field: lit("carolpw"), want: Accept, reason: ReasonNoMFARequired},
			{mode: ModeChallenge, user: "dave", field: lit("davepw"), want: Reject, reason: ReasonNotEnrolled},
		}},
		{name: "challenge/grace", opt: grace(time.Minute), steps: []step{
			{mode: ModeChallenge, user: "carol", field: lit("carolpw"), want: Accept, reason: ReasonGrace},
		}},
		{name: "challenge/user without password", steps: []step{
			{mode: ModeChallenge, user: "otto", field: lit(""), want: Reject, reason: ReasonNoPassword, check: wantNoMessage},
			{mode: ModeChallenge, user: "otto", field: lit("guess"), want: Reject, reason: ReasonNoPassword},
		}},
		{name: "challenge/token removed before answer", steps: []step{
			{mode: ModeChallenge, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
			{mode: ModeChallenge, user: "alice", field: withCode("", "alice", 0), state: prevState,
				before: func(e *env) { e.update("alice", func(u *store.User) { u.TOTP = nil }) }, want: Reject, reason: ReasonNotEnrolled},
		}},

		// ---- otp-only ----
		{name: "otp-only/accept", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 0), want: Accept, reason: ReasonOK, check: wantLastStep("alice", 0)},
		}},
		{name: "otp-only/wrong code", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: func(e *env) string { return e.wrongCode("alice") }, want: Reject, reason: ReasonBadCode},
		}},
		{name: "otp-only/malformed codes count", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: lit("12345"), want: Reject, reason: ReasonBadCode},
			{mode: ModeOTPOnly, user: "alice", field: lit(" 123456"), want: Reject, reason: ReasonBadCode},
			{mode: ModeOTPOnly, user: "alice", field: lit("١٢٣٤٥٦"), want: Reject, reason: ReasonBadCode,
				check: func(t *testing.T, e *env, _ Decision) {
					if u := e.user("alice"); u.CodeFailures != 3 {
						t.Errorf("CodeFailures = %d, want 3", u.CodeFailures)
					}
				}},
		}},
		{name: "otp-only/password is not a code", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: withCode("correct horse", "alice", 0), want: Reject, reason: ReasonBadCode},
		}},
		{name: "otp-only/reused", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 0), want: Accept, reason: ReasonOK},
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 0), want: Reject, reason: ReasonCodeReused},
		}},
		{name: "otp-only/±1 accepted, ±2 rejected", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", -2), want: Reject, reason: ReasonBadCode},
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", -1), want: Accept, reason: ReasonOK},
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 2), want: Reject, reason: ReasonBadCode},
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 1), want: Accept, reason: ReasonOK},
		}},
		{name: "otp-only/recovery once", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: lit(rcAlice2), want: Accept, reason: ReasonRecoveryCode},
			{mode: ModeOTPOnly, user: "alice", field: lit(rcAlice2), want: Reject, reason: ReasonBadCode},
			{mode: ModeOTPOnly, user: "alice", field: lit("1234-5678"), want: Accept, reason: ReasonRecoveryCode},
		}},
		{name: "otp-only/locked", steps: []step{
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 0), before: lockUser("alice", 9, time.Hour), want: Reject, reason: ReasonLocked},
			{mode: ModeOTPOnly, user: "alice", field: withCode("", "alice", 0), before: unlockUser("alice"), want: Accept, reason: ReasonOK},
		}},
		{name: "otp-only/disabled", steps: []step{
			{mode: ModeOTPOnly, user: "bob", field: withCode("", "bob", 0), want: Reject, reason: ReasonDisabled},
		}},
		{name: "otp-only/unknown user", steps: []step{
			{mode: ModeOTPOnly, user: "nobody", field: lit("123456"), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "otp-only/not enrolled", steps: []step{
			// No credential was verified: no hint that carol exists.
			{mode: ModeOTPOnly, user: "carol", field: lit("123456"), want: Reject, reason: ReasonNotEnrolled, check: wantNoMessage},
			{mode: ModeOTPOnly, user: "carol", field: lit(""), want: Reject, reason: ReasonNotEnrolled, check: wantNoMessage},
		}},
		{name: "otp-only/not enrolled, optional and groups", opt: optional("vpn-admins"), steps: []step{
			{mode: ModeOTPOnly, user: "carol", field: lit(""), want: Accept, reason: ReasonNoMFARequired},
			{mode: ModeOTPOnly, user: "dave", field: lit(""), want: Reject, reason: ReasonNotEnrolled, check: wantNoMessage},
		}},
		{name: "otp-only/grace", opt: grace(time.Minute), steps: []step{
			{mode: ModeOTPOnly, user: "carol", field: lit(""), want: Accept, reason: ReasonGrace},
			{mode: ModeOTPOnly, user: "carol", field: lit(""), before: advance(time.Minute), want: Reject, reason: ReasonNotEnrolled, check: wantNoMessage},
		}},
		{name: "otp-only/user without password", steps: []step{
			{mode: ModeOTPOnly, user: "otto", field: withCode("", "otto", 0), want: Accept, reason: ReasonOK},
		}},

		// ---- auto ----
		{name: "auto/append style", steps: []step{
			{mode: ModeAuto, user: "alice", field: withCode("correct horse", "alice", 0), want: Accept, reason: ReasonOK},
		}},
		{name: "auto/challenge style", steps: []step{
			{mode: ModeAuto, user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK, check: wantChallenge},
			{mode: ModeAuto, user: "alice", field: withCode("", "alice", 0), state: prevState, want: Accept, reason: ReasonOK},
		}},
		{name: "auto/empty mode is auto", steps: []step{
			{mode: "", user: "alice", field: lit("correct horse"), want: Challenge, reason: ReasonOK},
		}},
		{name: "auto/wrong password, wrong code", steps: []step{
			{mode: ModeAuto, user: "alice", field: withCode("correct horsf", "alice", 0), want: Reject, reason: ReasonBadPassword},
			{mode: ModeAuto, user: "alice", field: withWrongCode("correct horse", "alice"), want: Reject, reason: ReasonBadCode},
			{mode: ModeAuto, user: "alice", field: lit("correct horsf"), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "auto/recovery appended", steps: []step{
			{mode: ModeAuto, user: "alice", field: lit("correct horse" + rcAlice1), want: Accept, reason: ReasonRecoveryCode},
		}},
		{name: "auto/password ending in digits must append the code", steps: []step{
			{mode: ModeAuto, user: "digit", field: withCode("summer123456", "digit", 0), want: Accept, reason: ReasonOK},
			// Documented rule: the password alone is read as prefix + code.
			{mode: ModeAuto, user: "digit", field: lit("summer123456"), want: Reject, reason: ReasonBadPassword},
		}},
		{name: "auto/tokenless user, digit password is whole", opt: optional(), steps: []step{
			{mode: ModeAuto, user: "erin", field: lit("erin123456"), want: Accept, reason: ReasonNoMFARequired},
			{mode: ModeAuto, user: "carol", field: lit("carolpw"), want: Accept, reason: ReasonNoMFARequired},
		}},
		{name: "auto/not enrolled", steps: []step{
			{mode: ModeAuto, user: "carol", field: lit("carolpw"), want: Reject, reason: ReasonNotEnrolled, check: wantNotEnrolledMsg},
		}},
		{name: "auto/user without password", steps: []step{
			{mode: ModeAuto, user: "otto", field: withCode("", "otto", 0), want: Reject, reason: ReasonNoPassword, check: wantNoMessage},
			{mode: ModeAuto, user: "otto", field: lit(""), want: Reject, reason: ReasonNoPassword, check: wantNoMessage},
		}},
		{name: "auto/locked, disabled, unknown", steps: []step{
			{mode: ModeAuto, user: "alice", field: withCode("correct horse", "alice", 0), before: lockUser("alice", 6, time.Minute), want: Reject, reason: ReasonLocked},
			{mode: ModeAuto, user: "bob", field: withCode("bobpw", "bob", 0), want: Reject, reason: ReasonDisabled},
			{mode: ModeAuto, user: "nobody", field: lit("pw123456"), want: Reject, reason: ReasonUnknownUser},
		}},
		{name: "unknown mode", steps: []step{
			{mode: "bogus", user: "alice", field: lit("x"), want: Reject, reason: ReasonInternal},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opt)
			for i, s := range tc.steps {
				if s.before != nil {
					s.before(e)
				}
				r := Request{User: s.user, Mode: s.mode, Client: s.client, Station: s.station}
				r.Password = s.field(e)
				if s.state != nil {
					r.State = s.state(e)
				}
				d := e.auth(r)
				if d.Result != s.want || d.Reason != s.reason {
					t.Fatalf("step %d (%s %s): got %s/%s, want %s/%s", i, s.mode, s.user, d.Result, d.Reason, s.want, s.reason)
				}
				if d.Result != Challenge && d.State != nil {
					t.Errorf("step %d: %s carries a State", i, d.Result)
				}
				if d.Elapsed <= 0 {
					t.Errorf("step %d: Elapsed = %v", i, d.Elapsed)
				}
				if s.check != nil {
					s.check(t, e, d)
				}
			}
		})
	}
}

// TestLockoutBackoff walks a user through the RFC 4226 §7.3 backoff with
// wrong codes and checks the store fields.
func TestLockoutBackoff(t *testing.T) {
	e := newEnv(t, nil)
	wrong := func() Decision {
		return e.auth(Request{User: "alice", Mode: ModeOTPOnly, Password: e.wrongCode("alice")})
	}
	for i := 1; i <= 4; i++ {
		if d := wrong(); d.Reason != ReasonBadCode {
			t.Fatalf("failure %d: %s", i, d.Reason)
		}
		if u := e.user("alice"); u.CodeFailures != i || !u.LockedUntil.IsZero() {
			t.Fatalf("after %d failures: failures %d, locked until %v", i, u.CodeFailures, u.LockedUntil)
		}
	}
	wantLock := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute}
	for i, lock := range wantLock {
		if d := wrong(); d.Reason != ReasonBadCode {
			t.Fatalf("failure %d: %s", 5+i, d.Reason)
		}
		u := e.user("alice")
		if got := u.LockedUntil.Sub(e.clk.Now()); got != lock {
			t.Fatalf("after failure %d: lock %v, want %v", 5+i, got, lock)
		}
		// While locked even the right code is refused and not counted.
		if d := e.auth(Request{User: "alice", Mode: ModeOTPOnly, Password: e.code("alice", 0)}); d.Reason != ReasonLocked {
			t.Fatalf("locked: got %s", d.Reason)
		}
		e.clk.Advance(lock - time.Second)
		if d := wrong(); d.Reason != ReasonLocked {
			t.Fatalf("1 s before unlock: got %s", d.Reason)
		}
		if got := e.user("alice").CodeFailures; got != 5+i {
			t.Fatalf("locked guesses were counted: failures %d, want %d", got, 5+i)
		}
		e.clk.Advance(time.Second)
	}
	if d := e.auth(Request{User: "alice", Mode: ModeOTPOnly, Password: e.code("alice", 0)}); d.Result != Accept {
		t.Fatalf("after lock expiry: %s/%s", d.Result, d.Reason)
	}
	if u := e.user("alice"); u.CodeFailures != 8 || !u.LockedUntil.IsZero() {
		t.Fatalf("after success: failures %d, locked until %v; want 8 (decaying), unlocked", u.CodeFailures, u.LockedUntil)
	}
	// The real user's success does not restart the attacker's escalation:
	// the next wrong guess (the 9th) locks for 8 min, not 30 s.
	e.clk.Advance(time.Minute)
	if d := wrong(); d.Reason != ReasonBadCode {
		t.Fatalf("failure 9: %s", d.Reason)
	}
	if got := e.user("alice").LockedUntil.Sub(e.clk.Now()); got != 8*time.Minute {
		t.Fatalf("after a success then failure 9: lock %v, want 8m0s", got)
	}
	// One failure is forgiven per lockout_max (4 h) without failures.
	e.clk.Advance(3*4*time.Hour + time.Minute)
	if d := wrong(); d.Reason != ReasonBadCode {
		t.Fatalf("failure after decay: %s", d.Reason)
	}
	if u := e.user("alice"); u.CodeFailures != 9-3+1 {
		t.Fatalf("after 12 h: failures %d, want %d", u.CodeFailures, 9-3+1)
	}
}

func TestDecayedFailures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const every = 4 * time.Hour
	tests := []struct {
		failures int
		last     time.Time
		now      time.Time
		want     int
	}{
		{0, t0, t0.Add(every), 0},
		{5, t0, t0, 5},
		{5, t0, t0.Add(every - time.Second), 5},
		{5, t0, t0.Add(every), 4},
		{5, t0, t0.Add(3 * every), 2},
		{5, t0, t0.Add(100 * every), 0},
		{5, time.Time{}, t0, 5},
		{5, t0, t0.Add(-time.Hour), 5}, // clock went back: no decay
	}
	for _, tc := range tests {
		if got := decayedFailures(tc.failures, tc.last, tc.now, every); got != tc.want {
			t.Errorf("decayedFailures(%d, +%v) = %d, want %d", tc.failures, tc.now.Sub(tc.last), got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	const base, max = 30 * time.Second, 4 * time.Hour
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {4, 0}, {5, 30 * time.Second}, {6, time.Minute}, {13, 7680 * time.Second},
		{14, max}, {100, max}, {1 << 30, max},
	}
	for _, tc := range tests {
		if got := backoff(tc.failures, 5, base, max); got != tc.want {
			t.Errorf("backoff(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

// TestPasswordFailuresPerStation: password guessing from station A slows A
// only; code failures lock the user everywhere.
func TestPasswordFailuresPerStation(t *testing.T) {
	e := newEnv(t, nil)
	at := func(station, field string) Decision {
		return e.auth(Request{User: "alice", Mode: ModeAppend, Station: station, Password: field})
	}
	for i := 0; i < 5; i++ {
		if d := at("A", "guess"+e.code("alice", 0)); d.Reason != ReasonBadPassword {
			t.Fatalf("guess %d from A: %s", i, d.Reason)
		}
	}
	if d := at("A", "correct horse"+e.code("alice", 0)); d.Reason != ReasonLocked {
		t.Fatalf("A after 5 password failures: %s, want locked", d.Reason)
	}
	if u := e.user("alice"); u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
		t.Fatalf("password failures reached the store: %d, %v", u.CodeFailures, u.LockedUntil)
	}
	if d := at("B", "correct horse"+e.code("alice", 0)); d.Result != Accept {
		t.Fatalf("B while A is in backoff: %s/%s", d.Result, d.Reason)
	}
	// Unknown users get the same station backoff (no existence oracle).
	for i := 0; i < 5; i++ {
		e.auth(Request{User: "ghost", Mode: ModeAppend, Station: "A", Password: "x123456"})
	}
	if d := e.auth(Request{User: "ghost", Mode: ModeAppend, Station: "A", Password: "x123456"}); d.Reason != ReasonLocked {
		t.Fatalf("unknown user at A: %s, want locked", d.Reason)
	}
	e.clk.Advance(30 * time.Second)
	if d := at("A", "correct horse"+e.code("alice", 0)); d.Result != Accept {
		t.Fatalf("A after its backoff: %s/%s", d.Result, d.Reason)
	}

	// Code failures from A lock alice at B too.
	e.clk.Advance(30 * time.Second)
	for i := 0; i < 5; i++ {
		if d := at("A", "correct horse"+e.wrongCode("alice")); d.Reason != ReasonBadCode {
			t.Fatalf("code guess %d from A: %s", i, d.Reason)
		}
	}
	if d := at("B", "correct horse"+e.code("alice", 0)); d.Reason != ReasonLocked {
		t.Fatalf("B after 5 code failures at A: %s, want locked", d.Reason)
	}
	if d := e.auth(Request{User: "alice", Mode: ModeOTPOnly, Client: "other-nas", Password: e.code("alice", 0)}); d.Reason != ReasonLocked {
		t.Fatalf("other client after code failures: %s, want locked", d.Reason)
	}
}

func TestStationTableBounded(t *testing.T) {
	st := newStationTable(testOptions(), 3, 8)
	for i, u := range []string{"a", "b", "c", "d"} {
		st.settle(u, "s", pwFailed, t0.Add(time.Duration(i)*time.Second))
	}
	if n := st.len(); n != 3 {
		t.Fatalf("len = %d, want 3", n)
	}
	if _, ok := st.users["a"]; ok {
		t.Fatal("oldest entry not evicted")
	}
	// Quiet entries are forgotten.
	if st.settle("d", "s", pwNeutral, t0.Add(stationForgetAfter+time.Hour)) || st.len() != 2 {
		t.Fatalf("forgotten entry kept: len %d", st.len())
	}
}

func TestChallengeTableBounded(t *testing.T) {
	c := newChallengeTable(time.Minute, store.StateLimits{Total: 2, PerClient: 2, PerUser: 2})
	s1 := c.issue("u", "c", stateInfo{}, t0)
	s2 := c.issue("u", "c", stateInfo{}, t0.Add(time.Second))
	enrolling := stateInfo{step: stepEnrollCode, tries: 1, link: "https://otp.example.com/enroll/x"}
	s3 := c.issue("u", "c", enrolling, t0.Add(2*time.Second))
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2", c.len())
	}
	if _, _, _, ok := c.take(s1, t0.Add(3*time.Second)); ok {
		t.Fatal("evicted State accepted")
	}
	if bytes.Equal(s2, s3) {
		t.Fatal("States repeat")
	}
	if u, cl, info, ok := c.take(s3, t0.Add(30*time.Second)); !ok || u != "u" || cl != "c" || info != enrolling {
		t.Fatalf("valid State: %q %q %+v %v, want u c %+v true", u, cl, info, ok, enrolling)
	}
	if _, _, _, ok := c.take(s3, t0.Add(31*time.Second)); ok {
		t.Fatal("State used twice")
	}
	// s2 expires at t0+61s and is swept by the next issue.
	c.issue("u", "c", stateInfo{}, t0.Add(61*time.Second))
	if c.len() != 1 {
		t.Fatalf("expired State not swept: len %d", c.len())
	}
	if _, _, _, ok := c.take(s2, t0.Add(60*time.Second)); ok {
		t.Fatal("swept State accepted")
	}
}

// TestConcurrentSameCode: 50 requests with the same code, exactly one wins;
// the 49 replays are not guesses, so they neither count nor lock.
func TestConcurrentSameCode(t *testing.T) {
	// One client may have half the queue waiting (hashGate): room for all.
	e := newEnv(t, func(o *Options) { o.HashWorkers = 4; o.HashQueue = 128 })
	field := "correct horse" + e.code("alice", 0)
	const n = 50
	var wg sync.WaitGroup
	results := make(chan Decision, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results <- e.a.Authenticate(context.Background(), Request{User: "alice", Mode: ModeAppend, Client: "vpn", Password: field})
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	counts := map[Reason]int{}
	accepts := 0
	for d := range results {
		counts[d.Reason]++
		if d.Result == Accept {
			accepts++
		}
	}
	if accepts != 1 || counts[ReasonCodeReused] != n-1 {
		t.Fatalf("accepts %d, reasons %v; want 1 accept and %d code_reused", accepts, counts, n-1)
	}
	if u := e.user("alice"); u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
		t.Fatalf("CodeFailures = %d, locked until %v; want 0, unlocked", u.CodeFailures, u.LockedUntil)
	}
}

// TestConcurrentGuessesRespectLock: a burst of wrong codes cannot get past
// the lock: at most threshold of them are evaluated.
func TestConcurrentGuessesRespectLock(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.HashWorkers = 4; o.HashQueue = 64 })
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[Reason]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := e.a.Authenticate(context.Background(), Request{User: "alice", Mode: ModeOTPOnly, Client: "vpn", Password: e.wrongCode("alice")})
			mu.Lock()
			counts[d.Reason]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[ReasonBadCode] != 5 || counts[ReasonLocked] != n-5 {
		t.Fatalf("reasons %v; want 5 bad_code and %d locked", counts, n-5)
	}
}

func TestOverloadDrop(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.HashWorkers = 1; o.HashQueue = 0 })
	if cap(e.a.admit) != 1 || cap(e.a.workers) != 1 {
		t.Fatalf("admit %d, workers %d", cap(e.a.admit), cap(e.a.workers))
	}
	e.a.admit <- struct{}{} // one request in flight
	start := time.Now()
	d := e.a.Authenticate(context.Background(), Request{User: "alice", Mode: ModeAppend, Password: "correct horse" + e.code("alice", 0)})
	if d.Result != Drop || d.Reason != ReasonOverload {
		t.Fatalf("got %s/%s, want drop/overload", d.Result, d.Reason)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Drop took %v", el)
	}
	<-e.a.admit
	if d := e.auth(Request{User: "alice", Mode: ModeAppend, Password: "correct horse" + e.code("alice", 0)}); d.Result != Accept {
		t.Fatalf("after the slot freed: %s/%s", d.Result, d.Reason)
	}
}

func TestCanceledWhileWaitingDrops(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.HashWorkers = 1; o.HashQueue = 1 })
	e.a.workers <- struct{}{} // the only worker is busy
	waiting := make(chan struct{})
	e.a.onWorkerWait = func() { close(waiting) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Decision)
	go func() {
		done <- e.a.Authenticate(ctx, Request{User: "alice", Mode: ModeAppend, Client: "vpn", Password: "correct horse123456"})
	}()
	select {
	case <-waiting:
	case d := <-done:
		t.Fatalf("did not wait for a worker: %s/%s", d.Result, d.Reason)
	case <-time.After(5 * time.Second):
		t.Fatal("the request neither waited for a worker nor returned")
	}
	cancel()
	select {
	case d := <-done:
		if d.Result != Drop {
			t.Fatalf("got %s/%s, want drop", d.Result, d.Reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancellation did not end the wait")
	}
	<-e.a.workers
}

func TestStoreErrorIsInternal(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, nil)
	e.a.log = slog.New(slog.NewTextHandler(&buf, nil))
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	d := e.auth(Request{User: "alice", Mode: ModeAppend, Password: "correct horse123456"})
	if d.Result != Reject || d.Reason != ReasonInternal {
		t.Fatalf("got %s/%s, want reject/internal_error", d.Result, d.Reason)
	}
	if !strings.Contains(buf.String(), "level=ERROR") {
		t.Fatalf("store error not logged: %q", buf.String())
	}
	if strings.Contains(buf.String(), "correct horse") {
		t.Fatal("password in the log")
	}
}

// TestInternalLogLevels: a store that is unavailable is dropped and logged
// at Debug only (it comes at the NAS's retransmit rate while the database is
// down; the daemon logs the outage once); any other internal error is an
// Error and a Reject.
func TestInternalLogLevels(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		result Result
		reason Reason
		level  string // the line logged; only an Error shows at Info
	}{
		{"unavailable", fmt.Errorf("store: get: %w: connection refused", store.ErrUnavailable), Drop, ReasonUnavailable, "level=DEBUG"},
		{"other", errors.New("store: get: disk on fire"), Reject, ReasonInternal, "level=ERROR"},
		// A password source's own timeout is a decision: every server
		// down is a Reject the audit log shows, not a silent drop.
		{"source timeout", fmt.Errorf("password source: upstream: no RADIUS server answered: %w", context.DeadlineExceeded), Reject, ReasonInternal, "level=ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var info, debug bytes.Buffer
			a := &Authenticator{}
			for _, c := range []struct {
				buf   *bytes.Buffer
				level slog.Level
			}{{&info, slog.LevelInfo}, {&debug, slog.LevelDebug}} {
				a.log = slog.New(slog.NewTextHandler(c.buf, &slog.HandlerOptions{Level: c.level}))
				d := a.internal(context.Background(), "auth: read user", "alice", tt.err)
				if d.Result != tt.result || d.Reason != tt.reason {
					t.Fatalf("got %s/%s, want %s/%s", d.Result, d.Reason, tt.result, tt.reason)
				}
			}
			if !strings.Contains(debug.String(), tt.level) {
				t.Errorf("debug log %q has no %s line", debug.String(), tt.level)
			}
			if wantInfo := tt.level != "level=DEBUG"; (info.Len() > 0) != wantInfo {
				t.Errorf("info log %q: want a line %v", info.String(), wantInfo)
			}
		})
	}
}

// TestInternalCanceledRequest: a request whose own context ended is dropped
// whatever the error says: nobody waits for its answer.
func TestInternalCanceledRequest(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &Authenticator{log: slog.New(slog.DiscardHandler)}
	if d := a.internal(ctx, "auth: read user", "alice", errors.New("store: get: interrupted")); d.Result != Drop || d.Reason != dropCanceled.Reason {
		t.Fatalf("got %s/%s, want the drop of a canceled request", d.Result, d.Reason)
	}
}

// TestNoSecretsLogged runs the flows with debug logging and greps the log.
func TestNoSecretsLogged(t *testing.T) {
	var buf bytes.Buffer
	e := newEnv(t, nil)
	e.a.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	code := e.code("alice", 0)
	e.auth(Request{User: "alice", Mode: ModeChallenge, Password: "correct horse"})
	st := e.prev.State
	e.auth(Request{User: "alice", Mode: ModeChallenge, Password: code, State: st})
	e.auth(Request{User: "alice", Mode: ModeAppend, Password: "correct horse" + rcAlice1})
	e.auth(Request{User: "alice", Mode: ModeAppend, Password: "wrong pass" + code})
	log := buf.String()
	if !strings.Contains(log, "decision") {
		t.Fatalf("no decision lines logged: %q", log)
	}
	for _, secret := range []string{"correct horse", "wrong pass", code, rcAlice1, string(st), string(e.seeds["alice"])} {
		if strings.Contains(log, secret) {
			t.Errorf("log contains a secret %q", secret)
		}
	}
}

func TestSetPolicyConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			if i%2 == 0 {
				e.a.SetPolicy(Policy{MFA: MFAOptional})
			} else {
				e.a.SetPolicy(Policy{MFA: MFARequired})
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			e.a.Authenticate(context.Background(), Request{User: "carol", Mode: ModeAppend, Client: "vpn", Password: "carolpw"})
		}
	}()
	wg.Wait()
	e.a.SetPolicy(Policy{MFA: MFAOptional})
	if d := e.auth(Request{User: "carol", Mode: ModeAppend, Password: "carolpw"}); d.Reason != ReasonNoMFARequired {
		t.Fatalf("after SetPolicy(optional): %s", d.Reason)
	}
	e.a.SetPolicy(Policy{MFA: "sometimes"}) // invalid: fail safe
	if d := e.auth(Request{User: "carol", Mode: ModeAppend, Password: "carolpw"}); d.Reason != ReasonNotEnrolled {
		t.Fatalf("after an invalid policy: %s, want not_enrolled", d.Reason)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := New(testOptions(), nil, nil); err == nil {
		t.Error("nil store accepted")
	}
	for name, mut := range map[string]func(*Options){
		"skew":   func(o *Options) { o.Skew = -1 },
		"max":    func(o *Options) { o.LockoutInitial, o.LockoutMax = time.Hour, time.Minute },
		"queue":  func(o *Options) { o.HashQueue = -1 },
		"policy": func(o *Options) { o.Policy = Policy{MFA: "maybe"} },
		"zero":   func(o *Options) { *o = Options{} }, // New fills in no defaults
	} {
		o := testOptions()
		mut(&o)
		if _, err := New(o, e.st, nil); err == nil {
			t.Errorf("%s: invalid options accepted", name)
		}
	}
}

// TestSameHashWork: unknown, disabled and locked users, and users without a
// password, all wait for a hash worker like a normal login (timing
// uniformity): with the only worker busy, each request is still waiting when
// its context ends.
func TestSameHashWork(t *testing.T) {
	tests := []struct {
		name  string
		user  string
		field string
		setup func(*env)
	}{
		{"known", "alice", "correct horse123456", nil},
		{"unknown", "nobody", "correct horse123456", nil},
		{"invalid name", "a b", "x", nil},
		{"disabled", "bob", "bobpw123456", nil},
		{"locked", "alice", "correct horse123456", lockUser("alice", 9, time.Hour)},
		{"no password", "otto", "123456", nil},
		{"not enrolled", "carol", "carolpw", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.HashWorkers = 1; o.HashQueue = 4 })
			if tc.setup != nil {
				tc.setup(e)
			}
			e.a.workers <- struct{}{}
			defer func() { <-e.a.workers }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			d := e.a.Authenticate(ctx, Request{User: tc.user, Mode: ModeAuto, Client: "vpn", Password: tc.field})
			if d.Result != Drop {
				t.Fatalf("got %s/%s without waiting for a hash worker", d.Result, d.Reason)
			}
		})
	}
}
