package auth

import (
	"context"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// addBareUser creates a user with neither a password nor a token (what
// `otpgate user add NAME` without a password leaves before enrollment).
func addBareUser(e *env, name string, groups ...string) {
	e.t.Helper()
	if err := e.st.Create(context.Background(), store.User{Name: name, Groups: groups}); err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
}

// TestNoFactorUserNeedsAFactor: a user with no password and no token has
// nothing we could check on append, challenge and auto clients, so an empty
// (or any) field must not let them in, whatever the MFA policy or grace.
// Only otp-only clients, where the NAS checked the password, accept such a
// user on policy alone.
func TestNoFactorUserNeedsAFactor(t *testing.T) {
	policies := []struct {
		name string
		opt  func(*Options)
	}{
		{"optional", optional("vpn-admins")},
		{"required with grace", grace(time.Hour)},
	}
	for _, p := range policies {
		for _, mode := range []Mode{ModeAppend, ModeChallenge, ModeAuto, ""} {
			for _, field := range []string{"", "anything", "123456"} {
				t.Run(p.name+"/"+string(mode)+"/"+field, func(t *testing.T) {
					e := newEnv(t, p.opt)
					addBareUser(e, "bare")
					d := e.auth(Request{User: "bare", Mode: mode, Password: field})
					if d.Result != Reject || d.Reason != ReasonNoPassword {
						t.Fatalf("user without password and token: got %s/%s, want reject/%s", d.Result, d.Reason, ReasonNoPassword)
					}
					if d.Message != "" {
						t.Errorf("reject carries Message %q (would reveal the account to anyone)", d.Message)
					}
					if u := e.user("bare"); !u.LastSuccess.IsZero() {
						t.Errorf("LastSuccess set to %v", u.LastSuccess)
					}
				})
			}
		}
		t.Run(p.name+"/otp-only accepts on policy", func(t *testing.T) {
			e := newEnv(t, p.opt)
			addBareUser(e, "bare")
			if d := e.auth(Request{User: "bare", Mode: ModeOTPOnly, Password: ""}); d.Result != Accept {
				t.Fatalf("otp-only: got %s/%s, want accept", d.Result, d.Reason)
			}
		})
	}
}

// TestNoPasswordUserOnlyOnOTPOnlyClients: a user without a password (made
// with --no-password, a CSV row with an empty password, a
// google-authenticator import) has only the code. On append, challenge and
// auto clients the admin expects two factors, so whatever the field holds
// (the right code, a recovery code, nothing) is a uniform Reject with its
// own audit reason, no message and no State, costing one hash like a wrong
// password. Only otp-only clients, where the NAS checked the password,
// accept the code alone.
func TestNoPasswordUserOnlyOnOTPOnlyClients(t *testing.T) {
	fields := []struct {
		name  string
		field func(e *env) string
	}{
		{"right code", withCode("", "otto", 0)},
		{"empty", lit("")},
		{"anything then code", withCode("anything", "otto", 0)},
		{"recovery code", lit(rcScratch)},
	}
	for _, mode := range []Mode{ModeAppend, ModeChallenge, ModeAuto, ""} {
		for _, f := range fields {
			t.Run(string(mode)+"/"+f.name, func(t *testing.T) {
				e := newEnv(t, nil)
				e.update("otto", func(u *store.User) {
					u.RecoveryCodes = []string{e.st.HashRecoveryCode("otto", rcScratch)}
				})
				hashes := countHashes(e)
				d := e.auth(Request{User: "otto", Mode: mode, Password: f.field(e)})
				if d.Result != Reject || d.Reason != ReasonNoPassword || d.Message != "" || d.State != nil {
					t.Fatalf("got %s/%s (message %q, state %v), want a bare reject/%s", d.Result, d.Reason, d.Message, d.State != nil, ReasonNoPassword)
				}
				if n := hashes.Load(); n != 1 {
					t.Errorf("cost %d hashes, want 1 like a wrong password", n)
				}
				if u := e.user("otto"); u.TOTP.LastStep != 0 || u.CodeFailures != 0 || len(u.RecoveryCodes) != 1 {
					t.Errorf("the code was checked: last step %d, failures %d, %d recovery codes", u.TOTP.LastStep, u.CodeFailures, len(u.RecoveryCodes))
				}
			})
		}
	}
	t.Run("otp-only accepts the code", func(t *testing.T) {
		e := newEnv(t, nil)
		if d := e.auth(Request{User: "otto", Mode: ModeOTPOnly, Password: e.code("otto", 0)}); d.Result != Accept {
			t.Fatalf("otp-only: %s/%s, want accept", d.Result, d.Reason)
		}
	})
}

// enrollAfterGet is a store whose first read of the record (a Get, or an
// Update, as otp-only reads the record with one Update that writes nothing
// for a user without a token) returns the record as it was, then lets an
// enrollment (or another admin change) commit before the caller's next step:
// the window between auth's first read and the store.Update that records
// the success.
type enrollAfterGet struct {
	store.Store
	change  func(u *store.User)
	changed bool
}

func (s *enrollAfterGet) applyChange(ctx context.Context, name string) error {
	if s.change == nil || s.changed {
		return nil
	}
	s.changed = true
	return s.Store.Update(ctx, name, func(v *store.User) error { s.change(v); return nil })
}

func (s *enrollAfterGet) Get(ctx context.Context, name string) (store.User, error) {
	u, err := s.Store.Get(ctx, name)
	if err == nil {
		if uerr := s.applyChange(ctx, name); uerr != nil {
			return u, uerr
		}
	}
	return u, err
}

func (s *enrollAfterGet) Update(ctx context.Context, name string, fn func(u *store.User) error) error {
	err := s.Store.Update(ctx, name, fn)
	if uerr := s.applyChange(ctx, name); uerr != nil {
		return uerr
	}
	return err
}

func (s *enrollAfterGet) UpdateLogin(ctx context.Context, name string, fn func(u *store.User) error) error {
	err := s.Store.UpdateLogin(ctx, name, fn)
	if uerr := s.applyChange(ctx, name); uerr != nil {
		return uerr
	}
	return err
}

// TestNoTokenDecisionRecheckedInTransaction: the accept-without-code path
// must rest on the record inside the transaction that records the success,
// not on the earlier read: a token enrolled, a disable, or a new MFA group
// in between must not let the user in without a code.
func TestNoTokenDecisionRecheckedInTransaction(t *testing.T) {
	changes := []struct {
		name   string
		change func(e *env) func(u *store.User)
	}{
		{"token enrolled", func(e *env) func(u *store.User) {
			return func(u *store.User) {
				u.TOTP = &store.TOTP{Secret: []byte("0123456789abcdefghij"), Algorithm: "SHA1", Digits: 6, Period: 30}
			}
		}},
		{"disabled", func(*env) func(u *store.User) { return func(u *store.User) { u.Disabled = true } }},
		{"joined an MFA group", func(*env) func(u *store.User) {
			return func(u *store.User) { u.Groups = append(u.Groups, "vpn-admins") }
		}},
	}
	for _, mode := range []Mode{ModeOTPOnly, ModeAppend, ModeChallenge, ModeAuto} {
		for _, c := range changes {
			t.Run(string(mode)+"/"+c.name, func(t *testing.T) {
				e := newEnv(t, optional("vpn-admins"))
				racy := &enrollAfterGet{Store: e.st, change: c.change(e)}
				a, err := New(e.a.opt, racy, nil)
				if err != nil {
					t.Fatal(err)
				}
				field := "carolpw"
				if mode == ModeOTPOnly {
					field = ""
				}
				d := a.Authenticate(context.Background(), Request{User: "carol", Mode: mode, Client: "vpn", Station: "192.0.2.10", Password: field})
				if d.Result == Accept {
					t.Fatalf("accepted without a code after %s: %s/%s", c.name, d.Result, d.Reason)
				}
				if u := e.user("carol"); !u.LastSuccess.IsZero() {
					t.Errorf("LastSuccess set to %v", u.LastSuccess)
				}
			})
		}
	}
}
