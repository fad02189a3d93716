package auth

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/otpgate/otpgate/store"
)

// fakeDirectory is a PasswordChecker over a map; it counts its calls.
type fakeDirectory struct {
	mu     sync.Mutex
	users  map[string]string   // name -> password
	groups map[string][]string // name -> groups
	down   bool
	calls  int
}

func (f *fakeDirectory) Check(_ context.Context, user, pw string) (PasswordResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return PasswordResult{}, errors.New("every server is down")
	}
	want, ok := f.users[user]
	if !ok || pw == "" || pw != want {
		return PasswordResult{}, nil
	}
	return PasswordResult{OK: true, Groups: f.groups[user]}, nil
}

func newDirectory() *fakeDirectory {
	return &fakeDirectory{
		users: map[string]string{
			"alice": "dir-alice", "carol": "dir-carol", "newbie": "dir-newbie", "vpnuser": "dir-vpn",
			"bob": "dir-bob", "a*b": "dir-star",
		},
		groups: map[string][]string{"vpnuser": {"vpn"}},
	}
}

func TestDirectoryPasswords(t *testing.T) {
	type check func(t *testing.T, e *env, dir *fakeDirectory, d Decision)
	created := func(name string, want bool) check {
		return func(t *testing.T, e *env, _ *fakeDirectory, _ Decision) {
			_, err := e.st.Get(context.Background(), name)
			if got := err == nil; got != want {
				t.Errorf("%s in the store = %v, want %v", name, got, want)
			}
		}
	}
	calls := func(n int) check {
		return func(t *testing.T, _ *env, dir *fakeDirectory, _ Decision) {
			if dir.calls != n {
				t.Errorf("directory asked %d times, want %d (once per request)", dir.calls, n)
			}
		}
	}
	tests := []struct {
		name     string
		opt      func(*Options)
		down     bool
		user, pw func(*env) string
		mode     Mode
		want     Result
		reason   Reason
		checks   []check
	}{
		{name: "directory password and code", user: lit("alice"), pw: withCode("dir-alice", "alice", 0),
			want: Accept, reason: ReasonOK, checks: []check{calls(1)}},
		{name: "the local hash is not a password any more", user: lit("alice"), pw: withCode("correct horse", "alice", 0),
			want: Reject, reason: ReasonBadPassword},
		{name: "wrong code", user: lit("alice"), pw: withWrongCode("dir-alice", "alice"), want: Reject, reason: ReasonBadCode},
		{name: "unknown user", user: lit("mallory"), pw: lit("dir-alice123456"), want: Reject, reason: ReasonUnknownUser,
			checks: []check{created("mallory", false), calls(1)}},
		{name: "empty password", user: lit("carol"), pw: lit(""), want: Reject, reason: ReasonBadPassword},
		{name: "disabled in the store", user: lit("bob"), pw: lit("dir-bob"), want: Reject, reason: ReasonDisabled},
		{name: "new directory user is created, must enroll", user: lit("newbie"), pw: lit("dir-newbie"),
			want: Reject, reason: ReasonNotEnrolled, checks: []check{created("newbie", true),
				func(t *testing.T, e *env, _ *fakeDirectory, d Decision) {
					if d.Message != MsgNotEnrolled {
						t.Errorf("message %q, want the enrollment hint", d.Message)
					}
					if u := e.user("newbie"); u.PasswordHash != "" {
						t.Error("a directory user got a password hash")
					}
				}}},
		{name: "optional MFA, directory user outside the groups", opt: optional("vpn"), user: lit("newbie"), pw: lit("dir-newbie"),
			want: Accept, reason: ReasonNoMFARequired},
		{name: "optional MFA, directory group requires it", opt: optional("vpn"), user: lit("vpnuser"), pw: lit("dir-vpn"),
			want: Reject, reason: ReasonNotEnrolled},
		// The store allows no filter characters in names: the directory
		// may know such a user, otpgate rejects it like an unknown one.
		{name: "directory user the store cannot name", user: lit("a*b"), pw: lit("dir-star"), opt: optional(),
			want: Reject, reason: ReasonUnknownUser, checks: []check{created("a*b", false)}},
		{name: "directory down: no Accept", down: true, user: lit("alice"), pw: withCode("dir-alice", "alice", 0),
			want: Reject, reason: ReasonInternal},
		{name: "challenge mode", mode: ModeChallenge, user: lit("alice"), pw: lit("dir-alice"), want: Challenge, reason: ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDirectory()
			dir.down = tt.down
			e := newEnv(t, func(o *Options) {
				o.Passwords = dir
				if tt.opt != nil {
					tt.opt(o)
				}
			})
			mode := tt.mode
			if mode == "" {
				mode = ModeAuto
			}
			d := e.auth(Request{User: tt.user(e), Password: tt.pw(e), Mode: mode})
			if d.Result != tt.want || d.Reason != tt.reason {
				t.Fatalf("got %s/%s, want %s/%s", d.Result, d.Reason, tt.want, tt.reason)
			}
			for _, c := range tt.checks {
				c(t, e, dir, d)
			}
		})
	}
}

// A directory user created on the first login enrolls and then logs in with
// the directory password and the code.
func TestDirectoryUserEnrollsAndLogsIn(t *testing.T) {
	dir := newDirectory()
	e := newEnv(t, func(o *Options) { o.Passwords = dir })
	if d := e.auth(Request{User: "newbie", Password: "dir-newbie", Mode: ModeAuto}); d.Reason != ReasonNotEnrolled {
		t.Fatalf("first login: %s/%s, want not_enrolled", d.Result, d.Reason)
	}
	seed := []byte("newbie-seed-01234567")
	e.seeds["newbie"] = seed
	e.update("newbie", func(u *store.User) {
		u.TOTP = &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: t0}
	})
	if d := e.auth(Request{User: "newbie", Password: "dir-newbie" + e.code("newbie", 0), Mode: ModeAuto}); d.Result != Accept {
		t.Fatalf("after enrollment: %s/%s, want accept", d.Result, d.Reason)
	}
}

// Wrong directory passwords count toward the station's backoff like local
// ones, and each request asks the directory once.
func TestDirectoryPasswordBackoff(t *testing.T) {
	dir := newDirectory()
	e := newEnv(t, func(o *Options) { o.Passwords = dir })
	var last Decision
	for range e.a.opt.LockoutThreshold + 1 {
		last = e.auth(Request{User: "alice", Password: "guess" + e.code("alice", 0), Mode: ModeAuto})
	}
	if last.Reason != ReasonLocked {
		t.Fatalf("after %d wrong passwords: %s, want locked", e.a.opt.LockoutThreshold+1, last.Reason)
	}
	if want := e.a.opt.LockoutThreshold + 1; dir.calls != want {
		t.Errorf("directory asked %d times for %d requests", dir.calls, want)
	}
}
