package auth

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// fastParams keeps test hashing cheap.
var fastParams = password.Params{Time: 1, MemKiB: 64, Threads: 1}

// testChallengeTTL is testOptions' challenge State lifetime.
const testChallengeTTL = 120 * time.Second

// testOptions spells out every option, with the values of a default
// radiusd.toml except cheap hashing and a small pool: New fills in none.
func testOptions() Options {
	return Options{
		Skew:               1,
		LockoutThreshold:   5,
		LockoutInitial:     30 * time.Second,
		LockoutMax:         4 * time.Hour,
		ChallengeTTL:       testChallengeTTL,
		HashWorkers:        2,
		HashQueue:          64,
		PasswordHashParams: fastParams,
		Policy:             Policy{MFA: MFARequired},
	}
}

// t0 is 10 s into a 30 s time step.
var t0 = time.Unix(1_780_000_000-1_780_000_000%30+10, 0).UTC()

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Recovery codes of alice and otto (our dashed shape and a scratch code).
const (
	rcAlice1  = "k7qd-2mxa-pz4f-c3rt"
	rcAlice2  = "abcd-efgh-ijkl-mnop"
	rcScratch = "12345678"
	rcOther   = "zzzz-zzzz-zzzz-zzzz" // nobody's
)

type testUser struct {
	name, pw string
	token    bool
	disabled bool
	groups   []string
	recovery []string // normalized codes
}

// The users every env starts with.
var testUsers = []testUser{
	{name: "alice", pw: "correct horse", token: true, recovery: []string{"k7qd2mxapz4fc3rt", "abcdefghijklmnop", "12345678"}},
	{name: "bob", pw: "bobpw", token: true, disabled: true},
	{name: "carol", pw: "carolpw", groups: []string{"staff"}},
	{name: "dave", pw: "davepw", groups: []string{"vpn-admins"}},
	{name: "erin", pw: "erin123456"},                 // no token, password ends in 6 digits
	{name: "otto", token: true},                      // no password: OTP-only deployment
	{name: "digit", pw: "summer123456", token: true}, // token, password ends in 6 digits
}

type env struct {
	t     testing.TB
	a     *Authenticator
	st    *store.DB
	clk   *fakeClock
	seeds map[string][]byte
	prev  Decision
	// lastState is the State of the last Challenge.
	lastState []byte
}

// newEnv opens a real bbolt store in t.TempDir(), creates testUsers and an
// Authenticator with a fake clock at t0. mut may change the options.
func newEnv(t testing.TB, mut func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e := &env{t: t, st: st, clk: &fakeClock{t: t0}, seeds: map[string][]byte{}}
	ctx := context.Background()
	for i, tu := range testUsers {
		u := store.User{Name: tu.name, Groups: tu.groups, Disabled: tu.disabled}
		if tu.pw != "" {
			if u.PasswordHash, err = password.Hash(tu.pw, fastParams); err != nil {
				t.Fatal(err)
			}
		}
		if tu.token {
			seed := []byte(fmt.Sprintf("seed-%02d-%s-0123456789", i, tu.name))[:20]
			e.seeds[tu.name] = seed
			u.TOTP = &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: t0.Add(-time.Hour)}
		}
		for _, rc := range tu.recovery {
			u.RecoveryCodes = append(u.RecoveryCodes, st.HashRecoveryCode(tu.name, rc))
		}
		if err := st.Create(ctx, u); err != nil {
			t.Fatalf("create %s: %v", tu.name, err)
		}
	}
	opt := testOptions()
	opt.Now = e.clk.Now
	if mut != nil {
		mut(&opt)
	}
	if e.a, err = New(opt, st, nil); err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// code returns user's code for the step offset steps from the fake now
// (totp's own tests check its codes against oathtool and pquerna/otp).
func (e *env) code(user string, offset int) string {
	e.t.Helper()
	seed, ok := e.seeds[user]
	if !ok {
		return "000000"
	}
	c, err := totp.Default.CodeAt(seed, e.clk.Now().Add(time.Duration(offset)*30*time.Second))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wrongCode returns a 6-digit code that matches none of user's steps within
// ±2 of now.
func (e *env) wrongCode(user string) string {
	e.t.Helper()
	bad := map[string]bool{}
	for d := -2; d <= 2; d++ {
		bad[e.code(user, d)] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (i*7919+13)%1_000_000)
		if !bad[c] {
			return c
		}
	}
}

func (e *env) user(name string) store.User {
	e.t.Helper()
	u, err := e.st.Get(context.Background(), name)
	if err != nil {
		e.t.Fatalf("get %s: %v", name, err)
	}
	return u
}

func (e *env) update(name string, fn func(*store.User)) {
	e.t.Helper()
	if err := e.st.Update(context.Background(), name, func(u *store.User) error { fn(u); return nil }); err != nil {
		e.t.Fatalf("update %s: %v", name, err)
	}
}

func (e *env) auth(r Request) Decision {
	if r.Client == "" {
		r.Client = "vpn"
	}
	if r.Station == "" {
		r.Station = "192.0.2.10"
	}
	e.prev = e.a.Authenticate(context.Background(), r)
	if e.prev.Result == Challenge {
		e.lastState = e.prev.State
	}
	return e.prev
}
