package upstream

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// An upstream that matches names without regard to case, as NPS does for
// AD accounts: alice's password typed as ALICE is alice's login, which
// needs her code, and creates no record of its own; a first login creates
// its record in lower case.
func TestUpstreamNamesInAnyCase(t *testing.T) {
	secret := []byte("upstream-secret-0123456789")
	accounts := map[string]string{"alice": "alicepw", "bob": "bobpw"}
	server := serveUsers(t, secret, true, func(user, pw string) bool {
		want, ok := accounts[strings.ToLower(user)]
		return ok && pw == want
	})
	a, st, seed := newUpstreamAuth(t, server, secret)
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
		{"ALICE", "alicepw", auth.Challenge, auth.ReasonOK}, // alice has a token: her code is asked
		{"aLiCe", "alicepw" + code, auth.Accept, auth.ReasonOK},
		{"Bob", "bobpw", auth.Accept, auth.ReasonNoMFARequired}, // first login, no MFA group
		{"BOB", "bobpw", auth.Accept, auth.ReasonNoMFARequired},
	} {
		d := a.Authenticate(ctx, auth.Request{User: tt.user, Password: tt.field, Client: "vpn", Station: "192.0.2.1", Mode: auth.ModeAuto})
		if d.Result != tt.want || d.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.user, d.Result, d.Reason, tt.want, tt.reason)
		}
	}
	if _, err := st.Get(ctx, "bob"); err != nil {
		t.Errorf("Bob's first login did not create bob: %v", err)
	}
	for _, name := range []string{"ALICE", "aLiCe", "Bob", "BOB"} {
		if _, err := st.Get(ctx, name); !errors.Is(err, store.ErrUserNotFound) {
			t.Errorf("a second record %q: %v, want ErrUserNotFound", name, err)
		}
	}
}

// An upstream that matches names exactly (a FreeRADIUS users file): Bob's
// first login is checked upstream as Bob, the account it holds, and his
// record is bob; BOB is no account there and gets nothing.
func TestUpstreamNamesMatchedExactly(t *testing.T) {
	secret := []byte("upstream-secret-0123456789")
	server := serveUsers(t, secret, true, func(user, pw string) bool { return user == "Bob" && pw == "bobpw" })
	a, st, _ := newUpstreamAuth(t, server, secret)
	ctx := context.Background()
	for _, tt := range []struct {
		user   string
		want   auth.Result
		reason auth.Reason
	}{
		{"Bob", auth.Accept, auth.ReasonNoMFARequired},
		{"BOB", auth.Reject, auth.ReasonBadPassword},
		{"Bob", auth.Accept, auth.ReasonNoMFARequired}, // now through the record bob
	} {
		d := a.Authenticate(ctx, auth.Request{User: tt.user, Password: "bobpw", Client: "vpn", Station: "192.0.2.1", Mode: auth.ModeAuto})
		if d.Result != tt.want || d.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.user, d.Result, d.Reason, tt.want, tt.reason)
		}
	}
	if _, err := st.Get(ctx, "bob"); err != nil {
		t.Errorf("Bob's first login did not create bob: %v", err)
	}
}

// newUpstreamAuth is an Authenticator whose passwords the upstream RADIUS
// server checks, over a fresh store holding alice with a token (seed).
func newUpstreamAuth(t *testing.T, server string, secret []byte) (*auth.Authenticator, store.Store, []byte) {
	t.Helper()
	src, err := New(Options{Servers: []string{server}, Secret: secret, Timeout: 2 * time.Second, NASIdentifier: "otpgate"})
	if err != nil {
		t.Fatal(err)
	}
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
		Policy:             auth.Policy{MFA: auth.MFAOptional},
		Passwords:          src}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, st, seed
}

// An upstream that never answers: the login is rejected with
// internal_error, and the audit log shows it, rather than dropped as if
// the request itself had been given up (the source's own timeout is a
// context deadline too).
func TestUpstreamSilentIsRejected(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	a, _, _ := newUpstreamAuth(t, silent.LocalAddr().String(), []byte("upstream-secret-0123456789"))
	d := a.Authenticate(context.Background(), auth.Request{User: "alice", Password: "alicepw", Client: "vpn", Station: "192.0.2.1", Mode: auth.ModeAuto})
	if d.Result != auth.Reject || d.Reason != auth.ReasonInternal {
		t.Fatalf("got %s/%s, want reject/internal_error", d.Result, d.Reason)
	}
}
