package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// codeAt is the code of secret at t.
func codeAt(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	c, err := totp.Default.CodeAt(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongCodeFor returns a 6-digit code that does not verify for secret
// around testNow; n picks different ones.
func wrongCodeFor(t *testing.T, secret []byte, n int) string {
	t.Helper()
	for i := n; ; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		if _, ok, err := totp.Default.Match(secret, c, testNow, enroll.Skew); !ok && err == nil {
			return c
		}
	}
}

// enrollNow runs both steps with the right code at testNow and returns the
// recovery codes and the secret.
func enrollNow(t *testing.T, l *Local, name string, force bool) ([]string, []byte) {
	t.Helper()
	secret, err := l.BeginEnroll(context.Background(), name, force)
	if err != nil {
		t.Fatalf("BeginEnroll: %v", err)
	}
	codes, err := l.ActivateTOTP(context.Background(), name, codeAt(t, secret, testNow), force)
	if err != nil {
		t.Fatalf("ActivateTOTP: %v", err)
	}
	return codes, secret
}

var oldSecret = []byte("old-secret-0123456789")

// TestEnroll runs the two steps, BeginEnroll and ActivateTOTP, in the
// situations an admin meets. Every case starts from alice with 9 code
// failures and a lock, with or without an active token.
func TestEnroll(t *testing.T) {
	ctx := context.Background()
	type state struct {
		l      *Local
		st     *store.DB
		secret []byte // the last pending secret BeginEnroll returned
	}
	begin := func(force bool, wantErr error) func(t *testing.T, s *state) {
		return func(t *testing.T, s *state) {
			t.Helper()
			secret, err := s.l.BeginEnroll(ctx, "alice", force)
			if !errors.Is(err, wantErr) {
				t.Fatalf("BeginEnroll(force=%v) = %v, want %v", force, err, wantErr)
			}
			if err != nil {
				if secret != nil {
					t.Error("a secret returned with an error")
				}
				return
			}
			if len(secret) != enroll.SecretSize {
				t.Fatalf("secret of %d bytes, want %d", len(secret), enroll.SecretSize)
			}
			if bytes.Equal(secret, s.secret) {
				t.Fatal("BeginEnroll returned the same secret twice")
			}
			s.secret = secret
		}
	}
	// activate sends code(secret) and checks the error.
	activate := func(code func(t *testing.T, secret []byte) string, force bool, wantErr error) func(t *testing.T, s *state) {
		return func(t *testing.T, s *state) {
			t.Helper()
			c := code(t, s.secret)
			rc, err := s.l.ActivateTOTP(ctx, "alice", c, force)
			if !errors.Is(err, wantErr) {
				t.Fatalf("ActivateTOTP(force=%v) = %v, want %v", force, err, wantErr)
			}
			if err != nil {
				if rc != nil {
					t.Error("recovery codes returned with an error")
				}
				if strings.Contains(err.Error(), c) && c != "" {
					t.Errorf("error %q contains the code", err)
				}
				return
			}
			if len(rc) != RecoveryCodeCount {
				t.Fatalf("%d recovery codes, want %d", len(rc), RecoveryCodeCount)
			}
			u, _ := s.st.Get(ctx, "alice")
			checkCodes(t, s.st, u, rc)
		}
	}
	right := func(t *testing.T, secret []byte) string { return codeAt(t, secret, testNow) }
	prevStep := func(t *testing.T, secret []byte) string { return codeAt(t, secret, testNow.Add(-30*time.Second)) }
	twoAhead := func(t *testing.T, secret []byte) string { return codeAt(t, secret, testNow.Add(60*time.Second)) }
	wrong := func(t *testing.T, secret []byte) string { return wrongCodeFor(t, secret, 0) }
	lit := func(c string) func(*testing.T, []byte) string { return func(*testing.T, []byte) string { return c } }
	stepOf := totp.Default.Step

	// checks on the stored user after the steps
	activeIs := func(want func(s *state) []byte, lastStep uint64) func(t *testing.T, s *state, u store.User) {
		return func(t *testing.T, s *state, u store.User) {
			t.Helper()
			tt := u.TOTP
			if tt == nil || !bytes.Equal(tt.Secret, want(s)) {
				t.Fatalf("active token is not the expected one (%v)", tt != nil)
			}
			if tt.LastStep != lastStep {
				t.Errorf("LastStep = %d, want %d", tt.LastStep, lastStep)
			}
		}
	}
	newToken := func(s *state) []byte { return s.secret }
	oldToken := func(*state) []byte { return oldSecret }
	activated := func(lastStep uint64) func(t *testing.T, s *state, u store.User) {
		return func(t *testing.T, s *state, u store.User) {
			t.Helper()
			activeIs(newToken, lastStep)(t, s, u)
			tt := u.TOTP
			if tt.Algorithm != "SHA1" || tt.Digits != 6 || tt.Period != 30 || !tt.Enrolled.Equal(testNow) {
				t.Errorf("token %+v is not SHA1/6/30 enrolled now", tt)
			}
			if u.PendingTOTP != nil || u.PendingTries != 0 {
				t.Errorf("pending token left after activation (%d tries)", u.PendingTries)
			}
			if u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
				t.Errorf("lockout not cleared: %d failures, until %v", u.CodeFailures, u.LockedUntil)
			}
		}
	}
	pendingIs := func(tries int) func(t *testing.T, s *state, u store.User) {
		return func(t *testing.T, s *state, u store.User) {
			t.Helper()
			if u.PendingTOTP == nil || !bytes.Equal(u.PendingTOTP.Secret, s.secret) {
				t.Fatalf("pending token is not the last secret BeginEnroll returned (%v)", u.PendingTOTP != nil)
			}
			if u.PendingTries != tries {
				t.Errorf("PendingTries = %d, want %d", u.PendingTries, tries)
			}
			if u.CodeFailures != 9 || u.LockedUntil.IsZero() {
				t.Errorf("lockout changed: %d failures, until %v", u.CodeFailures, u.LockedUntil)
			}
		}
	}
	noPending := func(t *testing.T, _ *state, u store.User) {
		t.Helper()
		if u.PendingTOTP != nil || u.PendingTries != 0 {
			t.Errorf("pending token %v, %d tries; want none", u.PendingTOTP != nil, u.PendingTries)
		}
	}
	noActive := func(t *testing.T, _ *state, u store.User) {
		t.Helper()
		if u.TOTP != nil {
			t.Error("an active token appeared")
		}
	}
	oldKept := func(t *testing.T, s *state, u store.User) {
		t.Helper()
		activeIs(oldToken, 42)(t, s, u)
		if !slices.Equal(u.RecoveryCodes, []string{"old-hash"}) {
			t.Errorf("recovery codes changed: %q", u.RecoveryCodes)
		}
	}

	type step = func(t *testing.T, s *state)
	wrongN := func(n int, last error) []step {
		var out []step
		for i := 1; i < n; i++ {
			out = append(out, activate(wrong, false, ErrWrongCode))
		}
		return append(out, activate(wrong, false, last))
	}
	tests := []struct {
		name     string
		enrolled bool
		steps    []step
		checks   []func(t *testing.T, s *state, u store.User)
	}{
		{name: "begin stores a pending token only",
			steps:  []step{begin(false, nil)},
			checks: []func(*testing.T, *state, store.User){pendingIs(0), noActive}},
		{name: "begin then activate",
			steps:  []step{begin(false, nil), activate(right, false, nil)},
			checks: []func(*testing.T, *state, store.User){activated(stepOf(testNow))}},
		{name: "previous step accepted (skew 1)",
			steps:  []step{begin(false, nil), activate(prevStep, false, nil)},
			checks: []func(*testing.T, *state, store.User){activated(stepOf(testNow) - 1)}},
		{name: "two steps ahead refused",
			steps:  []step{begin(false, nil), activate(twoAhead, false, ErrWrongCode)},
			checks: []func(*testing.T, *state, store.User){pendingIs(1), noActive}},
		{name: "activate without begin",
			steps:  []step{activate(lit("123456"), false, ErrNoPendingEnroll)},
			checks: []func(*testing.T, *state, store.User){noPending, noActive}},
		{name: "wrong code counts a try, not a login failure",
			steps:  []step{begin(false, nil), activate(wrong, false, ErrWrongCode)},
			checks: []func(*testing.T, *state, store.User){pendingIs(1), noActive}},
		{name: "malformed codes are refused without counting",
			steps: []step{begin(false, nil), activate(lit("12345"), false, ErrWrongCode),
				activate(lit("12 456"), false, ErrWrongCode), activate(lit("abcdef"), false, ErrWrongCode),
				activate(lit(""), false, ErrWrongCode), activate(lit("1234567"), false, ErrWrongCode)},
			checks: []func(*testing.T, *state, store.User){pendingIs(0)}},
		{name: "four wrong codes, then the right one",
			steps:  append(append([]step{begin(false, nil)}, wrongN(4, ErrWrongCode)...), activate(right, false, nil)),
			checks: []func(*testing.T, *state, store.User){activated(stepOf(testNow))}},
		{name: "the fifth wrong code discards the enrollment",
			steps: append(append([]step{begin(false, nil)}, wrongN(5, ErrEnrollDiscarded)...),
				activate(right, false, ErrNoPendingEnroll)),
			checks: []func(*testing.T, *state, store.User){noPending, noActive}},
		{name: "begin again replaces the pending token and its tries",
			steps: []step{begin(false, nil), activate(wrong, false, ErrWrongCode), activate(wrong, false, ErrWrongCode),
				begin(false, nil)},
			checks: []func(*testing.T, *state, store.User){pendingIs(0)}},
		{name: "a code of the replaced pending token is refused",
			steps: []step{begin(false, nil),
				func(t *testing.T, s *state) {
					first := s.secret
					begin(false, nil)(t, s)
					activate(func(t *testing.T, _ []byte) string { return codeAt(t, first, testNow) }, false, ErrWrongCode)(t, s)
				}},
			checks: []func(*testing.T, *state, store.User){pendingIs(1)}},
		{name: "active token: begin refused without force", enrolled: true,
			steps:  []step{begin(false, ErrAlreadyEnrolled)},
			checks: []func(*testing.T, *state, store.User){oldKept, noPending}},
		{name: "active token: forced begin keeps the old token valid", enrolled: true,
			steps:  []step{begin(true, nil)},
			checks: []func(*testing.T, *state, store.User){oldKept, pendingIs(0)}},
		{name: "active token: activate without force refused, nothing counted", enrolled: true,
			steps:  []step{begin(true, nil), activate(right, false, ErrAlreadyEnrolled), activate(wrong, false, ErrAlreadyEnrolled)},
			checks: []func(*testing.T, *state, store.User){oldKept, pendingIs(0)}},
		{name: "active token: wrong code with force keeps the old token", enrolled: true,
			steps:  []step{begin(true, nil), activate(wrong, true, ErrWrongCode)},
			checks: []func(*testing.T, *state, store.User){oldKept, pendingIs(1)}},
		{name: "active token: force on both steps replaces it", enrolled: true,
			steps:  []step{begin(true, nil), activate(right, true, nil)},
			checks: []func(*testing.T, *state, store.User){activated(stepOf(testNow))}},
		{name: "reset clears a pending enrollment",
			steps: []step{begin(false, nil), func(t *testing.T, s *state) {
				if err := s.l.ResetMFA(ctx, "alice"); err != nil {
					t.Fatal(err)
				}
			}, activate(right, false, ErrNoPendingEnroll)},
			checks: []func(*testing.T, *state, store.User){noPending, noActive}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, st := newLocal(t)
			u := store.User{Name: "alice", Created: testNow, CodeFailures: 9, LockedUntil: testNow.Add(time.Hour)}
			if tc.enrolled {
				u.TOTP = newTOTP(oldSecret, totp.Default, testNow.Add(-time.Hour))
				u.TOTP.LastStep = 42
				u.RecoveryCodes = []string{"old-hash"}
			}
			if err := st.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			s := &state{l: l, st: st}
			for _, step := range tc.steps {
				step(t, s)
			}
			got, err := st.Get(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for _, check := range tc.checks {
				check(t, s, got)
			}
			info, err := l.ShowUser(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if info.PendingEnroll != (got.PendingTOTP != nil) || info.Enrolled != (got.TOTP != nil) {
				t.Errorf("UserInfo pending %v enrolled %v; store has pending %v, active %v",
					info.PendingEnroll, info.Enrolled, got.PendingTOTP != nil, got.TOTP != nil)
			}
		})
	}
}

// TestEnrollmentCodeNotReplayable logs in through the real authenticator on
// the same store: the code typed to finish the enrollment is used up (a
// replay at the same moment is refused as code_reused), the next time
// step's code works.
func TestEnrollmentCodeNotReplayable(t *testing.T) {
	ctx := context.Background()
	l, st := newLocal(t)
	if err := l.AddUser(ctx, NewUser{Name: "otto"}); err != nil { // OTP-only
		t.Fatal(err)
	}
	clock := testNow
	a, err := auth.New(auth.Options{
		Skew: 1, LockoutThreshold: 5, LockoutInitial: 30 * time.Second, LockoutMax: 4 * time.Hour,
		ChallengeTTL: 2 * time.Minute, HashWorkers: 1, HashQueue: 8, PasswordHashParams: testParams,
		Policy: auth.Policy{MFA: auth.MFARequired}, Now: func() time.Time { return clock },
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := l.BeginEnroll(ctx, "otto", false)
	if err != nil {
		t.Fatal(err)
	}
	login := func(code string) auth.Decision {
		return a.Authenticate(ctx, auth.Request{User: "otto", Password: code, Client: "test", Station: "127.0.0.1", Mode: auth.ModeOTPOnly})
	}
	// The pending token is not a login token.
	if d := login(codeAt(t, secret, clock)); d.Result != auth.Reject || d.Reason != auth.ReasonNotEnrolled {
		t.Fatalf("login with the pending token: %v/%s, want reject/not_enrolled", d.Result, d.Reason)
	}
	enrollCode := codeAt(t, secret, clock)
	if _, err := l.ActivateTOTP(ctx, "otto", enrollCode, false); err != nil {
		t.Fatal(err)
	}
	if d := login(enrollCode); d.Result != auth.Reject || d.Reason != auth.ReasonCodeReused {
		t.Fatalf("login with the enrollment code: %v/%s, want reject/code_reused", d.Result, d.Reason)
	}
	clock = clock.Add(30 * time.Second)
	if d := login(codeAt(t, secret, clock)); d.Result != auth.Accept {
		t.Fatalf("login with the next step's code: %v/%s, want accept", d.Result, d.Reason)
	}
}

// TestEnrollOtherParams enrolls an 8-digit SHA256 token through the
// enrollment flow on this Service, answering with oathtool's code, and logs
// in with oathtool's next code through the real authenticator: the
// parameters a login accepts can be enrolled.
func TestEnrollOtherParams(t *testing.T) {
	testtool.Require(t, "oathtool")
	ctx := context.Background()
	l, st := newLocal(t)
	if err := l.AddUser(ctx, NewUser{Name: "otto"}); err != nil { // OTP-only
		t.Fatal(err)
	}
	p, err := totp.NewParams("SHA256", 8, 30)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := l.BeginEnrollWith(ctx, "otto", false, p)
	if err != nil {
		t.Fatal(err)
	}
	oathtool := func(at time.Time) string {
		t.Helper()
		return strings.TrimSpace(testtool.Run(t, "oathtool", "--totp=sha256", "-d", "8", "-b", enroll.EncodeSecret(secret),
			"--now", fmt.Sprintf("@%d", at.Unix())))
	}

	// The default token's 6-digit code for the same secret is refused
	// without counting as a wrong code.
	if _, err := l.ActivateTOTP(ctx, "otto", codeAt(t, secret, testNow), false); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("6-digit code: %v, want ErrWrongCode", err)
	}
	if u, _ := st.Get(ctx, "otto"); u.PendingTries != 0 {
		t.Fatalf("6-digit code counted: %d tries", u.PendingTries)
	}

	enrollCode := oathtool(testNow)
	var out bytes.Buffer
	f := enroll.Flow{
		In: strings.NewReader(enrollCode + "\n"), Out: &out, Issuer: l.Issuer(), User: "otto", Secret: secret, Params: p,
		Activate: func(ctx context.Context, code string) ([]string, error) {
			return l.ActivateTOTP(ctx, "otto", code, false)
		},
	}
	if err := f.Run(ctx); err != nil {
		t.Fatalf("flow: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "algorithm=SHA256&digits=8&period=30") {
		t.Errorf("flow output lacks the token's parameters:\n%s", out.String())
	}
	u, err := st.Get(ctx, "otto")
	if err != nil {
		t.Fatal(err)
	}
	step := p.Step(testNow)
	if tok := u.TOTP; tok == nil || tok.Algorithm != "SHA256" || tok.Digits != 8 || tok.Period != 30 || tok.LastStep != step {
		t.Fatalf("active token %+v, want SHA256/8/30 with last step %d", tok, step)
	}

	clock := testNow
	a, err := auth.New(auth.Options{
		Skew: 1, LockoutThreshold: 5, LockoutInitial: 30 * time.Second, LockoutMax: 4 * time.Hour,
		ChallengeTTL: 2 * time.Minute, HashWorkers: 1, HashQueue: 8, PasswordHashParams: testParams,
		Policy: auth.Policy{MFA: auth.MFARequired}, Now: func() time.Time { return clock },
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	login := func(code string) auth.Decision {
		return a.Authenticate(ctx, auth.Request{User: "otto", Password: code, Client: "test", Station: "127.0.0.1", Mode: auth.ModeOTPOnly})
	}
	if d := login(enrollCode); d.Result != auth.Reject || d.Reason != auth.ReasonCodeReused {
		t.Fatalf("login with the enrollment code: %v/%s, want reject/code_reused", d.Result, d.Reason)
	}
	clock = clock.Add(30 * time.Second)
	if d := login(oathtool(clock)); d.Result != auth.Accept {
		t.Fatalf("login with oathtool's next code: %v/%s, want accept", d.Result, d.Reason)
	}
}
