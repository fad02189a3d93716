package ldapsource

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// testTree: users, groups, a disabled AD-style account, a user whose name
// needs escaping in a filter, a name two entries share, and an entry found
// by mail that has no uid.
const testTree = `dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: otpgateTestUser
uid: alice
cn: Alice
sn: A
mail: alice@example.com
userPassword: alicepw
userAccountControl: 512
memberOf: cn=vpn,ou=groups,dc=example,dc=com

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carolpw

dn: uid=newbie,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: newbie
cn: Newbie
sn: N
userPassword: newbiepw

dn: uid=dis,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: otpgateTestUser
uid: dis
cn: Disabled
sn: D
userPassword: dispw
userAccountControl: 514

dn: uid=o(x)*,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: o(x)*
cn: Escaped
sn: E
userPassword: escpw

dn: cn=dup1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dup
cn: dup1
sn: D
userPassword: duppw

dn: cn=dup2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dup
cn: dup2
sn: D
userPassword: duppw

dn: cn=nouid,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
cn: nouid
sn: N
mail: nouid@example.com
userPassword: nouidpw

dn: uid=dave,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dave
uid: dsmith
cn: Dave
sn: S
userPassword: davepw

dn: cn=staff,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: staff
member: uid=carol,ou=people,dc=example,dc=com
`

func testOptions(ca testtool.TestCA, urls ...string) Options {
	return Options{
		URLs: urls, BindDN: "cn=otpgate,ou=services,dc=example,dc=com", BindPassword: "servicepw",
		BaseDN: "dc=example,dc=com", UserFilter: "(&(objectClass=inetOrgPerson)(uid={user}))",
		StartTLS: true, CAFile: ca.CAFile, GroupAttribute: "memberOf",
		GroupFilter: "(&(objectClass=groupOfNames)(member={dn}))",
		Timeout:     3 * time.Second, PoolSize: 2,
	}
}

func newSource(t *testing.T, opt Options) *Source {
	t.Helper()
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestSlapdCheck(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := testtool.StartSlapd(t, ca, testTree)
	s := newSource(t, testOptions(ca, srv.URL))
	tests := []struct {
		user, pw   string
		ok         bool
		wantGroups []string
	}{
		{"alice", "alicepw", true, []string{"vpn"}},
		{"carol", "carolpw", true, []string{"staff"}},
		{"alice", "wrong", false, nil},
		{"alice", "", false, nil}, // an empty bind would be anonymous
		{"nobody", "alicepw", false, nil},
		{"*", "alicepw", false, nil},
		{"*", "", false, nil},
		{")(uid=*", "alicepw", false, nil},
		{"alice)(uid=*", "alicepw", false, nil},
		{"dis", "dispw", false, nil}, // userAccountControl ACCOUNTDISABLE
		{"o(x)*", "escpw", true, nil},
		{"dup", "duppw", false, nil}, // two entries: ambiguous
	}
	for _, tt := range tests {
		res, err := s.Check(context.Background(), tt.user, tt.pw)
		if err != nil {
			t.Fatalf("Check(%q): %v", tt.user, err)
		}
		if res.OK != tt.ok {
			t.Errorf("Check(%q, %q).OK = %v, want %v", tt.user, tt.pw, res.OK, tt.ok)
		}
		if tt.ok && !slices.Equal(res.Groups, tt.wantGroups) {
			t.Errorf("Check(%q).Groups = %q, want %q", tt.user, res.Groups, tt.wantGroups)
		}
	}
	if st := s.Stats(); st.Checks != uint64(len(tests)) || st.Unavailable != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSlapdTLSIsVerified(t *testing.T) {
	dir := t.TempDir()
	ca := testtool.NewTestCA(t, dir)
	srv := testtool.StartSlapd(t, ca, testTree)
	other := testtool.NewTestCA(t, t.TempDir()) // a CA that did not sign the server's certificate
	s := newSource(t, testOptions(other, srv.URL))
	if _, err := s.Check(context.Background(), "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with a foreign CA: %v, want ErrUnavailable", err)
	}
	if s.Stats().Unavailable != 1 {
		t.Errorf("unavailable = %d, want 1", s.Stats().Unavailable)
	}
}

func TestSlapdFailover(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	first := testtool.StartSlapd(t, ca, testTree)
	second := testtool.StartSlapd(t, ca, testTree)
	s := newSource(t, testOptions(ca, first.URL, second.URL))
	check := func(when string) {
		t.Helper()
		res, err := s.Check(context.Background(), "alice", "alicepw")
		if err != nil || !res.OK {
			t.Fatalf("%s: ok=%v err=%v", when, res.OK, err)
		}
	}
	check("both up")
	first.Stop() // the pooled connections to it break
	check("first killed")
	check("first still down")
	second.Stop()
	if _, err := s.Check(context.Background(), "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("all down: %v, want ErrUnavailable", err)
	}
}

// The decision over a real directory: otpgate's code after the directory's
// password, MFA by directory group, a directory user created on the first
// login who enrolls and logs in.
func TestSlapdLogins(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := testtool.StartSlapd(t, ca, testTree)
	src := newSource(t, testOptions(ca, srv.URL))
	a, st, seed := newDirectoryAuth(t, src, auth.Policy{MFA: auth.MFAOptional, MFAGroups: []string{"staff"}})
	ctx := context.Background()
	code := func(seed []byte) string {
		c, err := totp.Default.CodeAt(seed, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wrong := func(seed []byte) string {
		c := code(seed)
		return string('0'+(c[0]-'0'+1)%10) + c[1:]
	}
	login := func(user, field string) auth.Decision {
		return a.Authenticate(ctx, auth.Request{User: user, Password: field, Client: "vpn", Station: "192.0.2.1", Mode: auth.ModeAuto})
	}
	for _, tt := range []struct {
		name, user string
		field      func() string
		want       auth.Result
		reason     auth.Reason
	}{
		{"wrong code", "alice", func() string { return "alicepw" + wrong(seed) }, auth.Reject, auth.ReasonBadCode},
		{"password and code", "alice", func() string { return "alicepw" + code(seed) }, auth.Accept, auth.ReasonOK},
		{"wrong password", "alice", func() string { return "nope" + code(seed) }, auth.Reject, auth.ReasonBadPassword},
		{"unknown user", "mallory", func() string { return "alicepw" }, auth.Reject, auth.ReasonUnknownUser},
		{"injection", "*", func() string { return "alicepw" }, auth.Reject, auth.ReasonUnknownUser},
		{"injection in a filter", ")(uid=*", func() string { return "alicepw" }, auth.Reject, auth.ReasonUnknownUser},
		{"disabled in the directory", "dis", func() string { return "dispw" }, auth.Reject, auth.ReasonUnknownUser},
		{"directory group staff needs MFA", "carol", func() string { return "carolpw" }, auth.Reject, auth.ReasonNotEnrolled},
		{"no MFA group: password alone, the name in another case", "NewBie", func() string { return "newbiepw" }, auth.Accept, auth.ReasonNoMFARequired},
	} {
		if d := login(tt.user, tt.field()); d.Result != tt.want || d.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.name, d.Result, d.Reason, tt.want, tt.reason)
		}
	}
	// carol was created on her first login; once enrolled she logs in
	// with the directory password and the code.
	carolSeed := []byte("carol-seed-012345678")
	if err := st.Update(ctx, "carol", func(u *store.User) error {
		if u.PasswordHash != "" {
			t.Error("a directory user got a local password hash")
		}
		u.TOTP = &store.TOTP{Secret: carolSeed, Algorithm: "SHA1", Digits: 6, Period: 30}
		return nil
	}); err != nil {
		t.Fatalf("carol was not created on her first login: %v", err)
	}
	// uid matches without regard to case, as AD's sAMAccountName does:
	// "CAROL" is carol's record, and NewBie was created as newbie.
	if d := login("CAROL", "carolpw"+code(carolSeed)); d.Result != auth.Accept {
		t.Errorf("carol enrolled, typed CAROL: %s/%s, want accept", d.Result, d.Reason)
	}
	if _, err := st.Get(ctx, "newbie"); err != nil {
		t.Errorf("NewBie's first login did not create newbie: %v", err)
	}
	for _, name := range []string{"NewBie", "CAROL"} {
		if _, err := st.Get(ctx, name); !errors.Is(err, store.ErrUserNotFound) {
			t.Errorf("a second record %q: %v, want ErrUserNotFound", name, err)
		}
	}
}

func TestSlapdCanonicalName(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := testtool.StartSlapd(t, ca, testTree)
	s := newSource(t, testOptions(ca, srv.URL))
	for _, tt := range []struct{ user, want string }{
		{"alice", "alice"},
		{"ALICE", "alice"},
		{"aLiCe", "alice"},
		{"nobody", "nobody"},
		{"DUP", "DUP"}, // ambiguous: left as typed, Check refuses it
		{"*", "*"},
		{"O(X)*", "o(x)*"},
		// Two uids: the one the entry is named by, whichever was typed,
		// so both reach one record.
		{"dave", "dave"},
		{"DSmith", "dave"},
	} {
		got, err := s.CanonicalName(context.Background(), tt.user)
		if err != nil || got != tt.want {
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
		}
	}
	// With an OR filter the entry's name is the first (attr={user}) term's
	// value, whichever term matched: alice's mail address is alice.
	opt := testOptions(ca, srv.URL)
	opt.UserFilter = "(|(uid={user})(mail={user}))"
	orFilter := newSource(t, opt)
	for _, tt := range []struct{ user, want string }{
		{"ALICE", "alice"},
		{"alice@example.com", "alice"},
		{"Alice@Example.COM", "alice"},
		{"nobody@example.com", "nobody@example.com"},
	} {
		if got, err := orFilter.CanonicalName(context.Background(), tt.user); err != nil || got != tt.want {
			t.Errorf("with an OR filter, CanonicalName(%q) = %q, %v; want %q", tt.user, got, err, tt.want)
		}
	}
	// An entry without the name attribute has no name to log in as.
	if got, err := orFilter.CanonicalName(context.Background(), "nouid@example.com"); err == nil {
		t.Errorf("an entry without uid: %q, want an error", got)
	}
	// More entries than the size limit: ambiguous, left as typed, and
	// Check refuses it.
	opt.UserFilter = "(|(uid={user})(objectClass=inetOrgPerson))"
	many := newSource(t, opt)
	if got, err := many.CanonicalName(context.Background(), "ALICE"); err != nil || got != "ALICE" {
		t.Errorf("a name every entry matches: %q, %v; want ALICE as typed", got, err)
	}
	if res, err := many.Check(context.Background(), "ALICE", "alicepw"); err != nil || res.OK {
		t.Errorf("Check of a name every entry matches: ok=%v err=%v, want refused", res.OK, err)
	}
}

// A directory that cannot answer the name lookup is an error, never the
// name as typed: auth would create a record under that spelling.
func TestSlapdCanonicalNameWithoutAnAnswer(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := testtool.StartSlapd(t, ca, testTree)
	opt := testOptions(ca, srv.URL)
	opt.BaseDN = "ou=missing,dc=example,dc=com" // the server answers noSuchObject
	if got, err := newSource(t, opt).CanonicalName(context.Background(), "ALICE"); err == nil {
		t.Errorf("search under a missing base: %q, want an error", got)
	}
	s := newSource(t, testOptions(ca, srv.URL))
	srv.Stop()
	if got, err := s.CanonicalName(context.Background(), "ALICE"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("server down: %q, %v; want ErrUnavailable", got, err)
	}
	if st := s.Stats(); st.Unavailable != 1 {
		t.Errorf("unavailable = %d after a name lookup nobody answered, want 1", st.Unavailable)
	}
}

// alice's directory password with her mail address for a name is alice's
// login: it needs her code, and creates no second record without one.
func TestSlapdLoginByMailIsTheUser(t *testing.T) {
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := testtool.StartSlapd(t, ca, testTree)
	opt := testOptions(ca, srv.URL)
	opt.UserFilter = "(&(objectClass=inetOrgPerson)(|(uid={user})(mail={user})))"
	src := newSource(t, opt)
	a, st, seed := newDirectoryAuth(t, src, auth.Policy{MFA: auth.MFAOptional})
	ctx := context.Background()
	code, err := totp.Default.CodeAt(seed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		user, field string
		want        auth.Result
		reason      auth.Reason
	}{
		{"alice@example.com", "alicepw", auth.Challenge, auth.ReasonOK}, // alice has a token: her code is asked
		{"alice@example.com", "alicepw" + code, auth.Accept, auth.ReasonOK},
	} {
		d := a.Authenticate(ctx, auth.Request{User: tt.user, Password: tt.field, Client: "vpn", Station: "192.0.2.1", Mode: auth.ModeAuto})
		if d.Result != tt.want || d.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.user, d.Result, d.Reason, tt.want, tt.reason)
		}
	}
	if _, err := st.Get(ctx, "alice@example.com"); !errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("a second record alice@example.com: %v, want ErrUserNotFound", err)
	}
}

// newDirectoryAuth is an Authenticator whose passwords src checks, over a
// fresh store holding alice with a token (seed), as otpgated wires them.
func newDirectoryAuth(t *testing.T, src auth.PasswordChecker, policy auth.Policy) (*auth.Authenticator, store.Store, []byte) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed := []byte("alice-seed-012345678")
	if err := st.Create(context.Background(), store.User{Name: "alice", TOTP: &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30}}); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{Skew: 1, LockoutThreshold: 5, LockoutInitial: time.Second, LockoutMax: time.Minute,
		ChallengeTTL: time.Minute, HashWorkers: 1, HashQueue: 8,
		PasswordHashParams: password.Params{Time: 1, MemKiB: 64, Threads: 1},
		Policy:             policy,
		Passwords:          src}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, st, seed
}
