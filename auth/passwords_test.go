package auth

import (
	"context"
	"errors"
	"strings"
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

// caselessDirectory matches names without regard to case, as AD behind NPS
// does; like the upstream RADIUS source it cannot spell a name (it is not a
// NameResolver).
type caselessDirectory struct{ *fakeDirectory }

func (c caselessDirectory) Check(ctx context.Context, user, pw string) (PasswordResult, error) {
	return c.fakeDirectory.Check(ctx, strings.ToLower(user), pw)
}

// resolvingDirectory is a caselessDirectory that spells its names in lower
// case, or fails every name lookup with err.
type resolvingDirectory struct {
	caselessDirectory
	spell func(string) (string, error)
}

func (r resolvingDirectory) CanonicalName(_ context.Context, user string) (string, error) {
	return r.spell(user)
}

func lowerSpelling(user string) (string, error) { return strings.ToLower(user), nil }

// Whatever a directory matches as alice is alice's record: another spelling
// of the name with alice's directory password still needs alice's code, and
// creates no record of its own (which would have no token, so MFA would be
// skipped or the typist would enroll a phone of their choice).
func TestDirectoryNameSpellingsShareTheRecord(t *testing.T) {
	sources := map[string]func(*fakeDirectory) PasswordChecker{
		"source that ignores case": func(d *fakeDirectory) PasswordChecker { return caselessDirectory{d} },
		"name resolver":            func(d *fakeDirectory) PasswordChecker { return resolvingDirectory{caselessDirectory{d}, lowerSpelling} },
	}
	policies := map[string]func(*testing.T, func(*Options)) *env{
		"mfa required":    func(t *testing.T, m func(*Options)) *env { return newEnv(t, m) },
		"mfa optional":    func(t *testing.T, m func(*Options)) *env { return newEnv(t, func(o *Options) { optional()(o); m(o) }) },
		"enroll at login": func(t *testing.T, m func(*Options)) *env { return newEnrollEnv(t, m).env },
	}
	for sname, source := range sources {
		for pname, newPolicyEnv := range policies {
			t.Run(sname+"/"+pname, func(t *testing.T) {
				e := newPolicyEnv(t, func(o *Options) { o.Passwords = source(newDirectory()) })
				// What the field gets for alice herself is what it gets for ALICE.
				for _, field := range []struct {
					name string
					pw   func(*env) string
				}{
					{"no code", lit("dir-alice")},
					{"wrong code", withWrongCode("dir-alice", "alice")},
				} {
					got := e.auth(Request{User: "ALICE", Password: field.pw(e), Mode: ModeAuto})
					want := e.auth(Request{User: "alice", Password: field.pw(e), Mode: ModeAuto})
					if got.Result != want.Result || got.Reason != want.Reason {
						t.Errorf("%s: ALICE got %s/%s, alice gets %s/%s", field.name, got.Result, got.Reason, want.Result, want.Reason)
					}
					if got.Result == Accept {
						t.Errorf("%s: ALICE accepted without alice's code", field.name)
					}
				}
				if d := e.auth(Request{User: "Alice", Password: "dir-alice" + e.code("alice", 0), Mode: ModeAuto}); d.Result != Accept {
					t.Errorf("Alice with alice's password and code: %s/%s, want accept", d.Result, d.Reason)
				}
				for _, name := range []string{"ALICE", "Alice"} {
					if _, err := e.st.Get(context.Background(), name); !errors.Is(err, store.ErrUserNotFound) {
						t.Errorf("a record %q: %v, want ErrUserNotFound", name, err)
					}
				}
			})
		}
	}
}

// A directory user's first login creates the record in the directory's
// spelling (lower case for a source that cannot spell), and every later
// spelling finds it.
func TestDirectoryFirstLoginSpelling(t *testing.T) {
	for name, source := range map[string]func(*fakeDirectory) PasswordChecker{
		"source that ignores case": func(d *fakeDirectory) PasswordChecker { return caselessDirectory{d} },
		"name resolver":            func(d *fakeDirectory) PasswordChecker { return resolvingDirectory{caselessDirectory{d}, lowerSpelling} },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Passwords = source(newDirectory()); optional("vpn")(o) })
			for _, typed := range []string{"NewBie", "NEWBIE", "newbie"} {
				if d := e.auth(Request{User: typed, Password: "dir-newbie", Mode: ModeAuto}); d.Reason != ReasonNoMFARequired {
					t.Fatalf("%s: %s/%s, want no_mfa_required", typed, d.Result, d.Reason)
				}
			}
			e.user("newbie")
			for _, other := range []string{"NewBie", "NEWBIE"} {
				if _, err := e.st.Get(context.Background(), other); !errors.Is(err, store.ErrUserNotFound) {
					t.Errorf("a record %q: %v, want ErrUserNotFound", other, err)
				}
			}
		})
	}
}

// A directory that cannot tell otpgate how it spells a name is a directory
// that could not answer: no record is created and nobody is accepted, as
// when its password check fails.
func TestDirectoryNameLookupFailsClosed(t *testing.T) {
	down := func(string) (string, error) { return "", errors.New("every server is down") }
	empty := func(string) (string, error) { return "", nil }
	for _, tt := range []struct {
		name  string
		spell func(string) (string, error)
		opt   func(*Options)
		user  string
		pw    func(*env) string
	}{
		{"lookup fails, mfa optional", down, optional(), "ALICE", lit("dir-alice")},
		{"lookup fails, mfa required", down, nil, "ALICE", withCode("dir-alice", "alice", 0)},
		{"lookup fails, new user", down, optional(), "newbie", lit("dir-newbie")},
		{"lookup returns no name", empty, optional(), "ALICE", lit("dir-alice")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := newDirectory()
			e := newEnv(t, func(o *Options) {
				o.Passwords = resolvingDirectory{caselessDirectory{dir}, tt.spell}
				if tt.opt != nil {
					tt.opt(o)
				}
			})
			d := e.auth(Request{User: tt.user, Password: tt.pw(e), Mode: ModeAuto})
			if d.Result != Reject || d.Reason != ReasonInternal {
				t.Errorf("got %s/%s, want reject/%s like a password source that could not answer", d.Result, d.Reason, ReasonInternal)
			}
			if _, err := e.st.Get(context.Background(), tt.user); !errors.Is(err, store.ErrUserNotFound) {
				t.Errorf("a record %q: %v, want ErrUserNotFound", tt.user, err)
			}
			// The name the store holds is not looked up: the lookup's
			// failure does not stop alice.
			if d := e.auth(Request{User: "alice", Password: "dir-alice" + e.code("alice", 0), Mode: ModeAuto}); d.Result != Accept {
				t.Errorf("alice as the store spells her: %s/%s, want accept", d.Result, d.Reason)
			}
		})
	}
}
