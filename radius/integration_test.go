package radius

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

type lockedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lockedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *lockedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestWithRealAuthAndStore runs the server with the real Authenticator on a
// real bbolt store: append, retransmission of an Accept (must not become a
// replay reject), replay, wrong code, and the challenge flow with State.
func TestWithRealAuthAndStore(t *testing.T) {
	fast := password.Params{Time: 1, MemKiB: 64, Threads: 1}
	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed := []byte("12345678901234567890")
	hash, err := password.Hash("correct horse", fast)
	if err != nil {
		t.Fatal(err)
	}
	clk := &lockedClock{t: time.Unix(1_780_000_000-1_780_000_000%30+5, 0)}
	ctx := context.Background()
	if err := st.Create(ctx, store.User{Name: "alice", PasswordHash: hash, Created: clk.now(),
		TOTP: &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: clk.now()}}); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{
		Skew: 1, LockoutThreshold: 5, LockoutInitial: 30 * time.Second, LockoutMax: 4 * time.Hour,
		ChallengeTTL: 2 * time.Minute, HashWorkers: 2, HashQueue: 16, PasswordHashParams: fast,
		Policy: auth.Policy{MFA: auth.MFARequired}, Now: clk.now,
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, testOptions(), a)
	c := newClient(t, s.addr)
	step := func() uint64 { return uint64(clk.now().Unix() / 30) }
	id := byte(0)
	send := func(pw string, state []byte) (*rad.Packet, []byte, []byte) {
		t.Helper()
		id++
		req := makeRequest(t, reqOpts{id: id, user: "alice", password: pw, state: state})
		resp := c.exchange(req)
		return checkResponse(t, resp, req, testSecret), req, resp
	}
	wantCode := func(p *rad.Packet, want rad.Code) {
		t.Helper()
		if p.Code != want {
			t.Fatalf("code %v, want %v", p.Code, want)
		}
	}

	// append: password + code.
	code := totp.Default.Code(seed, step())
	p, req, resp := send("correct horse"+code, nil)
	wantCode(p, rad.CodeAccessAccept)
	// The NAS lost the Accept and retransmits: it gets the same Accept.
	if again := c.exchange(req); string(again) != string(resp) {
		t.Fatal("retransmission was re-evaluated (replay reject) instead of answered from the cache")
	}
	// A new request with the same code is a replay.
	p, _, _ = send("correct horse"+code, nil)
	wantCode(p, rad.CodeAccessReject)
	if msgs, _ := rfc2865.ReplyMessage_GetStrings(p); len(msgs) != 0 {
		t.Fatalf("reject carries Reply-Message %q", msgs)
	}
	u, err := st.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.TOTP.LastStep != step() {
		t.Fatalf("LastStep %d, want %d", u.TOTP.LastStep, step())
	}

	// wrong code.
	clk.advance(30 * time.Second)
	wrong := totp.Default.Code(seed, step()+5)
	p, _, _ = send("correct horse"+wrong, nil)
	wantCode(p, rad.CodeAccessReject)

	// challenge: password alone, then the code with the State.
	clk.advance(30 * time.Second)
	p, _, _ = send("correct horse", nil)
	wantCode(p, rad.CodeAccessChallenge)
	state, err := rfc2865.State_Lookup(p)
	if err != nil || len(state) < 16 {
		t.Fatalf("challenge State %d octets, err %v", len(state), err)
	}
	if msg := rfc2865.ReplyMessage_GetString(p); msg == "" {
		t.Fatal("challenge without Reply-Message")
	}
	p, _, _ = send(totp.Default.Code(seed, step()), state)
	wantCode(p, rad.CodeAccessAccept)
	// The State is single use.
	clk.advance(30 * time.Second)
	p, _, _ = send(totp.Default.Code(seed, step()), state)
	wantCode(p, rad.CodeAccessReject)
}
