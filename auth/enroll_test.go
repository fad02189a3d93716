package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// countingEnroller is the admin's enrollment (admin.Local: the path the
// daemon passes), counting the offers. It is set after newEnv made the
// store.
type countingEnroller struct {
	l     *admin.Local
	begun atomic.Int32
}

func (c *countingEnroller) BeginEnroll(ctx context.Context, name string, force bool) ([]byte, error) {
	c.begun.Add(1)
	return c.l.BeginEnroll(ctx, name, force)
}

func (c *countingEnroller) ActivateTOTP(ctx context.Context, name, code string, force bool) ([]string, error) {
	return c.l.ActivateTOTP(ctx, name, code, false)
}

type enrollEnv struct {
	*env
	enr *countingEnroller
}

// newEnrollEnv is newEnv with first-login enrollment on, the admin's
// enrollment behind it, and the fake clock at the real time: admin.Local
// checks enrollment codes against time.Now.
func newEnrollEnv(t *testing.T, mut func(*Options)) *enrollEnv {
	t.Helper()
	enr := &countingEnroller{}
	e := newEnv(t, func(o *Options) {
		o.EnrollAtLogin = true
		o.Enroller = enr
		o.Issuer = "otpgate"
		if mut != nil {
			mut(o)
		}
	})
	enr.l = admin.NewLocal(e.st, fastParams, "otpgate")
	e.clk.mu.Lock()
	e.clk.t = time.Now()
	e.clk.mu.Unlock()
	return &enrollEnv{env: e, enr: enr}
}

var keyInMessage = regexp.MustCompile(`[A-Z2-7]{4}( [A-Z2-7]{4}){7}`)

// keyOf reads the key off a Challenge's text, as a user would.
func keyOf(t *testing.T, d Decision) []byte {
	t.Helper()
	k := keyInMessage.FindString(d.Message)
	if k == "" {
		t.Fatalf("no key in groups of four in %q", d.Message)
	}
	secret, err := enroll.DecodeSecret(k)
	if err != nil {
		t.Fatalf("decode key %q: %v", k, err)
	}
	return secret
}

func codeNow(t *testing.T, secret []byte) string {
	t.Helper()
	c, err := totp.Default.CodeAt(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongFor is a 6-digit code no step near now of secret gives.
func wrongFor(t *testing.T, secret []byte) string {
	t.Helper()
	for i := 0; ; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		ok := true
		for d := -3; d <= 3; d++ {
			if x, _ := totp.Default.CodeAt(secret, time.Now().Add(time.Duration(d)*30*time.Second)); x == c {
				ok = false
			}
		}
		if ok {
			return c
		}
	}
}

func wantDecision(t *testing.T, d Decision, res Result, reason Reason) {
	t.Helper()
	if d.Result != res || d.Reason != reason {
		t.Fatalf("got %s/%s (%q), want %s/%s", d.Result, d.Reason, d.Message, res, reason)
	}
	if len(d.Message) > maxReplyMessage {
		t.Errorf("Message is %d bytes, more than one Reply-Message holds: %q", len(d.Message), d.Message)
	}
}

// TestEnrollAtLogin walks carol (needs MFA, no token) through first-login
// enrollment: the key, a code, the recovery codes, Enter, and then an
// ordinary login in which the enrollment code is spent.
func TestEnrollAtLogin(t *testing.T) {
	for _, mode := range []Mode{ModeChallenge, ModeAuto} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnrollEnv(t, nil)
			d := e.auth(Request{User: "carol", Password: "carolpw", Mode: mode})
			wantDecision(t, d, Challenge, ReasonEnrollOffered)
			for _, want := range []string{"carol", "otpgate", "6-digit code"} {
				if !strings.Contains(d.Message, want) {
					t.Errorf("offer %q does not name %q", d.Message, want)
				}
			}
			secret := keyOf(t, d)
			u := e.user("carol")
			if u.TOTP != nil || u.PendingTOTP == nil || string(u.PendingTOTP.Secret) != string(secret) {
				t.Fatalf("after the offer: token %v, pending %v (want the shown key pending only)", u.TOTP, u.PendingTOTP)
			}
			offer := d.State

			code := codeNow(t, secret)
			d = e.auth(Request{User: "carol", Password: code, State: offer, Mode: mode})
			wantDecision(t, d, Challenge, ReasonEnrollConfirmed)
			codes := regexp.MustCompile(`[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}`).FindAllString(d.Message, -1)
			if len(codes) != admin.RecoveryCodeCount {
				t.Fatalf("recovery message shows %d codes, want %d: %q", len(codes), admin.RecoveryCodeCount, d.Message)
			}
			u = e.user("carol")
			if u.TOTP == nil || u.PendingTOTP != nil || u.TOTP.LastStep == 0 || len(u.RecoveryCodes) != admin.RecoveryCodeCount {
				t.Fatalf("after the code: token %+v, pending %v, %d recovery codes", u.TOTP, u.PendingTOTP, len(u.RecoveryCodes))
			}
			for i, c := range codes { // kept hashed, never as shown
				if slices.Contains(u.RecoveryCodes, c) || slices.Contains(u.RecoveryCodes, strings.ReplaceAll(c, "-", "")) {
					t.Fatalf("recovery code %d is stored as shown", i)
				}
			}

			d = e.auth(Request{User: "carol", Password: "", State: d.State, Mode: mode})
			wantDecision(t, d, Accept, ReasonEnrolled)
			if u := e.user("carol"); u.LastSuccess.IsZero() {
				t.Error("the enrolling login was not recorded (LastSuccess)")
			}

			// The enrollment code is spent; a recovery code shown works.
			d = e.auth(Request{User: "carol", Password: "carolpw" + code, Mode: ModeAppend})
			wantDecision(t, d, Reject, ReasonCodeReused)
			d = e.auth(Request{User: "carol", Password: "carolpw" + codes[0], Mode: ModeAppend})
			wantDecision(t, d, Accept, ReasonRecoveryCode)
			// From now on carol gets the ordinary code challenge.
			d = e.auth(Request{User: "carol", Password: "carolpw", Mode: mode})
			wantDecision(t, d, Challenge, ReasonOK)
		})
	}
}

// TestEnrollAtLoginNotOffered: today's behaviour wherever the option, the
// client's mode, the policy or the user's token says so.
func TestEnrollAtLoginNotOffered(t *testing.T) {
	scOf := func(pw string) string { return "SCRV1:" + base64.StdEncoding.EncodeToString([]byte(pw)) + ":" }
	tests := []struct {
		name   string
		opt    func(*Options)
		user   string
		pw     string
		mode   Mode
		result Result
		reason Reason
	}{
		{"option off", func(o *Options) { o.EnrollAtLogin = false }, "carol", "carolpw", ModeChallenge, Reject, ReasonNotEnrolled},
		{"append client", nil, "carol", "carolpw", ModeAppend, Reject, ReasonNotEnrolled},
		{"otp-only client", nil, "carol", "", ModeOTPOnly, Reject, ReasonNotEnrolled},
		{"static challenge on auto", nil, "carol", scOf("carolpw"), ModeAuto, Reject, ReasonNotEnrolled},
		{"wrong password", nil, "carol", "nope", ModeChallenge, Reject, ReasonBadPassword},
		{"unknown user", nil, "nobody", "carolpw", ModeChallenge, Reject, ReasonUnknownUser},
		{"mfa optional, not a member", optional("vpn-admins"), "carol", "carolpw", ModeChallenge, Accept, ReasonNoMFARequired},
		{"grace", func(o *Options) { o.Policy.GraceUntil = time.Now().Add(time.Hour) }, "carol", "carolpw", ModeChallenge, Accept, ReasonGrace},
		{"enrolled user gets the code challenge", nil, "alice", "correct horse", ModeChallenge, Challenge, ReasonOK},
		{"enrolled user on auto", nil, "alice", "correct horse", ModeAuto, Challenge, ReasonOK},
		{"disabled user", nil, "bob", "bobpw", ModeChallenge, Reject, ReasonDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnrollEnv(t, tt.opt)
			d := e.auth(Request{User: tt.user, Password: tt.pw, Mode: tt.mode})
			wantDecision(t, d, tt.result, tt.reason)
			if n := e.enr.begun.Load(); n != 0 {
				t.Errorf("BeginEnroll called %d times", n)
			}
			if u, err := e.st.Get(context.Background(), tt.user); err == nil && u.PendingTOTP != nil {
				t.Error("a pending token was stored")
			}
		})
	}
}

// TestEnrollAtLoginPendingNotValid: until the code is confirmed in the
// enrollment, the pending key logs in nowhere.
func TestEnrollAtLoginPendingNotValid(t *testing.T) {
	e := newEnrollEnv(t, nil)
	d := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	wantDecision(t, d, Challenge, ReasonEnrollOffered)
	secret := keyOf(t, d)
	code := codeNow(t, secret)
	for _, r := range []Request{
		{User: "carol", Password: "carolpw" + code, Mode: ModeAppend},
		{User: "carol", Password: "carolpw" + code, Mode: ModeAuto},
		{User: "carol", Password: code, Mode: ModeOTPOnly},
	} {
		if d := e.auth(r); d.Result == Accept {
			t.Errorf("%s with the pending key's code: accepted (%s)", r.Mode, d.Reason)
		}
	}
	if u := e.user("carol"); u.TOTP != nil {
		t.Fatal("the pending token became active without the enrollment")
	}
}

// TestEnrollAtLoginWrongCodes: each wrong code gets a new State showing the
// key again, the old State is spent, and the third wrong code is a Reject
// with no token activated.
func TestEnrollAtLoginWrongCodes(t *testing.T) {
	e := newEnrollEnv(t, nil)
	d := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	secret := keyOf(t, d)
	wrong := wrongFor(t, secret)
	state := d.State
	for i := 1; i < maxEnrollAnswers; i++ {
		d = e.auth(Request{User: "carol", Password: wrong, State: state, Mode: ModeChallenge})
		wantDecision(t, d, Challenge, ReasonEnrollBadCode)
		if string(keyOf(t, d)) != string(secret) {
			t.Fatal("the retry shows another key")
		}
		if string(d.State) == string(state) {
			t.Fatal("the retry reuses the State")
		}
		if d2 := e.auth(Request{User: "carol", Password: codeNow(t, secret), State: state, Mode: ModeChallenge}); d2.Reason != ReasonBadState {
			t.Fatalf("the spent State: got %s/%s, want bad_state", d2.Result, d2.Reason)
		}
		state = d.State
	}
	d = e.auth(Request{User: "carol", Password: wrong, State: state, Mode: ModeChallenge})
	wantDecision(t, d, Reject, ReasonEnrollBadCode)
	if u := e.user("carol"); u.TOTP != nil {
		t.Fatal("a token is active after wrong codes")
	}

	// A right code after the State's life is a bad State, not a token.
	d = e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	secret = keyOf(t, d)
	e.clk.Advance(testChallengeTTL)
	d = e.auth(Request{User: "carol", Password: codeNow(t, secret), State: d.State, Mode: ModeChallenge})
	wantDecision(t, d, Reject, ReasonBadState)
	if u := e.user("carol"); u.TOTP != nil {
		t.Fatal("an expired State activated the token")
	}
}

// TestEnrollAtLoginNeverReplaces: an answer to an enrollment State after a
// token appeared (enrolled elsewhere meanwhile) is an ordinary code check;
// the pending key's code does not replace the token, and the token's own
// code logs in.
func TestEnrollAtLoginNeverReplaces(t *testing.T) {
	e := newEnrollEnv(t, nil)
	first := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	wantDecision(t, first, Challenge, ReasonEnrollOffered)
	second := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge}) // another login, another key
	wantDecision(t, second, Challenge, ReasonEnrollOffered)
	pending := keyOf(t, second)
	other := []byte("another-token-seed-0")
	e.update("carol", func(u *store.User) {
		u.TOTP = &store.TOTP{Secret: other, Algorithm: "SHA1", Digits: 6, Period: 30}
	})
	d := e.auth(Request{User: "carol", Password: codeNow(t, pending), State: first.State, Mode: ModeChallenge})
	if d.Result == Accept || d.Result == Challenge {
		t.Fatalf("the pending key's code after a token appeared: %s/%s", d.Result, d.Reason)
	}
	if u := e.user("carol"); string(u.TOTP.Secret) != string(other) {
		t.Fatal("the token was replaced")
	}
	// And the token's own code passes the same way, as a login code.
	d = e.auth(Request{User: "carol", Password: codeNow(t, other), State: second.State, Mode: ModeChallenge})
	wantDecision(t, d, Accept, ReasonOK)
	if u := e.user("carol"); string(u.TOTP.Secret) != string(other) || u.LastSuccess.IsZero() {
		t.Fatalf("after the token's code: token replaced or login not recorded (LastSuccess %v)", u.LastSuccess)
	}
	// From now on carol gets the ordinary code challenge.
	d = e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	wantDecision(t, d, Challenge, ReasonOK)
}

// TestEnrollAtLoginDisabledMeanwhile: a user disabled between the offer
// and the code is not enrolled.
func TestEnrollAtLoginDisabledMeanwhile(t *testing.T) {
	e := newEnrollEnv(t, nil)
	d := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
	secret := keyOf(t, d)
	e.update("carol", func(u *store.User) { u.Disabled = true })
	d = e.auth(Request{User: "carol", Password: codeNow(t, secret), State: d.State, Mode: ModeChallenge})
	wantDecision(t, d, Reject, ReasonDisabled)
	if u := e.user("carol"); u.TOTP != nil {
		t.Fatal("a disabled user was enrolled")
	}
}

// TestEnrollAtLoginLink: with [web], the offer shows a one-time link; a
// code before the page was opened gets another try; the page's visit
// begins the enrollment and the code then activates it here.
func TestEnrollAtLoginLink(t *testing.T) {
	const url = "https://otp.example.com:8443/enroll/AAAAAAAAAAAAAAAAAAAAAA"
	e := newEnrollEnv(t, func(o *Options) {
		o.EnrollLink = func(context.Context, string) (string, error) { return url, nil }
	})
	d := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeAuto})
	wantDecision(t, d, Challenge, ReasonEnrollOffered)
	if !strings.Contains(d.Message, url) || keyInMessage.MatchString(d.Message) {
		t.Fatalf("link offer %q: want the link and no key", d.Message)
	}
	if n := e.enr.begun.Load(); n != 0 {
		t.Fatalf("the offer began %d enrollments; the link's page does", n)
	}
	d = e.auth(Request{User: "carol", Password: "123456", State: d.State, Mode: ModeAuto})
	wantDecision(t, d, Challenge, ReasonEnrollBadCode)
	if !strings.Contains(d.Message, url) {
		t.Errorf("retry %q does not show the link again", d.Message)
	}
	secret, err := e.enr.l.BeginEnroll(context.Background(), "carol", false) // the page's visit
	if err != nil {
		t.Fatal(err)
	}
	d = e.auth(Request{User: "carol", Password: codeNow(t, secret), State: d.State, Mode: ModeAuto})
	wantDecision(t, d, Challenge, ReasonEnrollConfirmed)
	d = e.auth(Request{User: "carol", Password: "", State: d.State, Mode: ModeAuto})
	wantDecision(t, d, Accept, ReasonEnrolled)
}

// TestEnrollAtLoginTriesUsedUp: wrong codes elsewhere (the link's page, the
// terminal) count against the pending token too; the wrong code at the
// prompt that uses up its tries discards it and is answered as a wrong
// enrollment code, never as an internal error.
func TestEnrollAtLoginTriesUsedUp(t *testing.T) {
	const url = "https://otp.example.com:8443/enroll/AAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name   string
		link   bool
		result Result // the link begins another enrollment; the key does not
	}{
		{"key", false, Reject},
		{"link", true, Challenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnrollEnv(t, func(o *Options) {
				if tt.link {
					o.EnrollLink = func(context.Context, string) (string, error) { return url, nil }
				}
			})
			d := e.auth(Request{User: "carol", Password: "carolpw", Mode: ModeChallenge})
			wantDecision(t, d, Challenge, ReasonEnrollOffered)
			var secret []byte
			if tt.link {
				var err error
				if secret, err = e.enr.l.BeginEnroll(context.Background(), "carol", false); err != nil { // the page's visit
					t.Fatal(err)
				}
			} else {
				secret = keyOf(t, d)
			}
			wrong := wrongFor(t, secret)
			for i := 1; i < admin.MaxEnrollTries; i++ { // on the page
				if _, err := e.enr.l.ActivateTOTP(context.Background(), "carol", wrong, false); !errors.Is(err, admin.ErrWrongCode) {
					t.Fatalf("wrong code %d on the page: %v, want ErrWrongCode", i, err)
				}
			}
			d = e.auth(Request{User: "carol", Password: wrong, State: d.State, Mode: ModeChallenge})
			wantDecision(t, d, tt.result, ReasonEnrollBadCode)
			if u := e.user("carol"); u.TOTP != nil || u.PendingTOTP != nil {
				t.Fatalf("after the tries were used up: token %v, pending %v (want neither)", u.TOTP, u.PendingTOTP)
			}
		})
	}
}

// TestEnrollMessagesFit: every prompt fits in the one Reply-Message
// pam_radius_auth shows, with the longest name and issuer config and the
// store allow, and still carries the key; a link too long to fit falls
// back to the key rather than being cut.
func TestEnrollMessagesFit(t *testing.T) {
	longName := strings.Repeat("n", store.MaxNameLen)
	longIssuer := strings.Repeat("I", 64) // config's bound on issuer
	e := newEnrollEnv(t, func(o *Options) {
		o.Issuer = longIssuer
		o.EnrollLink = func(context.Context, string) (string, error) {
			return "https://" + strings.Repeat("h", 240) + "/enroll/AAAAAAAAAAAAAAAAAAAAAA", nil
		}
	})
	if err := e.st.Create(context.Background(), store.User{Name: longName, PasswordHash: e.user("carol").PasswordHash}); err != nil {
		t.Fatal(err)
	}
	d := e.auth(Request{User: longName, Password: "carolpw", Mode: ModeChallenge})
	wantDecision(t, d, Challenge, ReasonEnrollOffered)
	secret := keyOf(t, d)
	d = e.auth(Request{User: longName, Password: wrongFor(t, secret), State: d.State, Mode: ModeChallenge})
	wantDecision(t, d, Challenge, ReasonEnrollBadCode)
	keyOf(t, d)
	d = e.auth(Request{User: longName, Password: codeNow(t, secret), State: d.State, Mode: ModeChallenge})
	wantDecision(t, d, Challenge, ReasonEnrollConfirmed)

	short := &Authenticator{opt: Options{Issuer: "otpgate"}}
	key := enroll.FormatSecret(make([]byte, enroll.SecretSize))
	for _, m := range []string{
		short.keyOffer(longName, key, 6),
		(&Authenticator{opt: Options{Issuer: longIssuer}}).keyOffer(longName, key, 8),
		recoveryMessage(longestCodes()),
	} {
		if m == "" || len(m) > maxReplyMessage {
			t.Errorf("%d bytes: %q", len(m), m)
		}
	}
}

// longestCodes is a full set of recovery codes as shown.
func longestCodes() []string {
	codes := make([]string, admin.RecoveryCodeCount)
	for i := range codes {
		codes[i] = "abcd-efgh-ijkl-mnop"
	}
	return codes
}

// TestEnrollAtLoginNeedsEnroller: the option without the operations behind
// it is a configuration error, not a Reject at the first login.
func TestEnrollAtLoginNeedsEnroller(t *testing.T) {
	o := testOptions()
	o.EnrollAtLogin = true
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "Enroller") {
		t.Fatalf("Validate = %v, want an error naming the Enroller", err)
	}
}
