package radius

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rad "layeh.com/radius"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// TestFloodingClientDoesNotStarveOthers: one client floods the password path
// at three times what the hash workers can do, while another client's users
// log in (password + code) now and then. At least 90 % of those logins must
// be accepted on their first transmission, within a NAS timeout: the
// flooding client slows itself, not everyone.
//
// Real argon2id at the default cost, the real Authenticator on a real bbolt
// store, the server sized as the daemon sizes it (handlers = workers +
// queue). The flood rate is set from a measured hash time, so the ratio
// holds on a slow or busy machine.
func TestFloodingClientDoesNotStarveOthers(t *testing.T) {
	const (
		workers, queue = 2, 256 // the daemon's default queue
		logins         = 20
		floodFactor    = 3
		floodSockets   = 8
	)
	params := password.DefaultParams
	hash, err := password.Hash("office-password", params)
	if err != nil {
		t.Fatal(err)
	}
	perHash := timeHashes(t, hash, 4)
	floodPerSec := floodFactor * float64(workers) / perHash.Seconds()
	// The other client asks for a small part of what the workers can do,
	// and waits for each answer as a gateway would (they wait 3-10 s), or
	// longer where hashing is slow (the race detector): without fairness
	// its requests wait behind about queue/workers hashes, or are dropped.
	loginEvery := max(100*time.Millisecond, 2*perHash)
	nasTimeout := max(2*time.Second, 20*perHash)

	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seed := []byte("12345678901234567890")
	ctx := context.Background()
	for i := range logins {
		if err := st.Create(ctx, store.User{Name: fmt.Sprintf("office%02d", i), PasswordHash: hash, Created: time.Now(),
			TOTP: &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := auth.New(auth.Options{
		Skew: 1, LockoutThreshold: 5, LockoutInitial: 30 * time.Second, LockoutMax: 4 * time.Hour,
		ChallengeTTL: 2 * time.Minute, HashWorkers: workers, HashQueue: queue, PasswordHashParams: params,
		Policy: auth.Policy{MFA: auth.MFARequired},
	}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt := testOptions()
	opt.Clients = []Client{testNAS("flood", "127.0.0.1", true, true), testNAS("office", "127.0.0.2", true, true)}
	opt.Handlers, opt.QueueLen = workers+queue, queue
	s := startServer(t, opt, a)

	// The flood: unknown user names, so every request costs a hash (a
	// repeated name would soon be shed by the per-station backoff).
	stopFlood := make(chan struct{})
	var flooders sync.WaitGroup
	floodConns := make([]*testClient, floodSockets)
	for i := range floodConns {
		floodConns[i] = newClientFrom(t, "127.0.0.1", s.addr)
	}
	flooders.Add(1)
	go func() {
		defer flooders.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0
		for {
			select {
			case <-stopFlood:
				return
			case <-tick.C:
			}
			for due := int(time.Since(start).Seconds() * floodPerSec); sent < due; sent++ {
				c := floodConns[sent%floodSockets]
				b := makeRequest(t, reqOpts{id: byte(sent / floodSockets), user: fmt.Sprintf("flood%d", sent), password: "guess123456"})
				c.conn.WriteTo(b, c.srv) // a full socket buffer only drops flood
			}
		}
	}()
	defer func() {
		close(stopFlood)
		flooders.Wait()
		// Force the shutdown: the flood's backlog is not worth hashing.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
	time.Sleep(time.Second) // let the flood fill whatever it can

	office := newClientFrom(t, "127.0.0.2", s.addr)
	type reply struct {
		b  []byte
		at time.Time
	}
	replies := make(chan reply, 4*logins)
	go func() {
		for {
			buf := make([]byte, 4096)
			n, _, err := office.conn.ReadFrom(buf)
			if err != nil {
				close(replies)
				return
			}
			replies <- reply{buf[:n], time.Now()}
		}
	}()
	reqs := make([][]byte, logins)
	sentAt := make([]time.Time, logins)
	for i := range logins {
		code := totp.Default.Code(seed, totp.Default.Step(time.Now()))
		reqs[i] = makeRequest(t, reqOpts{id: byte(i), user: fmt.Sprintf("office%02d", i), password: "office-password" + code})
		sentAt[i] = time.Now()
		office.send(reqs[i])
		time.Sleep(loginEvery)
	}
	time.Sleep(time.Until(sentAt[logins-1].Add(nasTimeout)))
	office.conn.Close()
	accepted := 0
	for r := range replies {
		id := int(r.b[1])
		if id < logins && rad.IsAuthenticResponse(r.b, reqs[id], []byte(testSecret)) &&
			rad.Code(r.b[0]) == rad.CodeAccessAccept && r.at.Sub(sentAt[id]) <= nasTimeout {
			accepted++
		}
	}
	t.Logf("flood %.0f/s (%dx the %d workers at %v per hash): %d of %d logins from another client accepted on the first try within %v",
		floodPerSec, floodFactor, workers, perHash.Round(time.Millisecond), accepted, logins, nasTimeout.Round(time.Millisecond))
	if accepted*10 < logins*9 {
		t.Fatalf("%d of %d logins accepted during the flood, want at least 90%%", accepted, logins)
	}
}

// timeHashes returns the mean time of one verification of hash, from n
// verifications one after another.
func timeHashes(t *testing.T, hash string, n int) time.Duration {
	t.Helper()
	start := time.Now()
	for range n {
		if _, err := password.Verify(hash, "x"); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(n)
}

// TestQueueShareLeavesRoomForOtherClients: with every handler busy, one
// client may fill only half the queue; its further requests are shed, and
// another client's request still gets a slot and its answer.
func TestQueueShareLeavesRoomForOtherClients(t *testing.T) {
	cfg := testOptions()
	cfg.Clients = []Client{testNAS("flood", "127.0.0.1", true, true), testNAS("office", "127.0.0.2", true, true)}
	cfg.Handlers, cfg.QueueLen = 1, 4
	gate := make(chan struct{})
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		if r.Client == "flood" {
			<-gate
		}
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s := startServer(t, cfg, fa)
	defer close(gate) // before the cleanup's Shutdown
	flood := newClientFrom(t, "127.0.0.1", s.addr)
	for id := range 6 { // one at a time: a burst may overflow the socket
		flood.send(makeRequest(t, reqOpts{id: byte(id), user: "u", password: "p"}))
		waitFor(t, "the request taken, queued or shed", func() bool {
			return fa.calls.Load()+int64(len(s.queue))+int64(valueOf(s.metrics.drops, dropOverload)) == int64(id+1)
		})
	}
	if q, d := len(s.queue), valueOf(s.metrics.drops, dropOverload); q != 4 || d != 1 {
		t.Fatalf("flood: %d queued, %d shed; want 4 queued (its share, QueueLen) and 1 shed", q, d)
	}
	office := newClientFrom(t, "127.0.0.2", s.addr)
	req := makeRequest(t, reqOpts{id: 1, user: "o", password: "p"})
	office.send(req)
	waitFor(t, "the office request queued", func() bool { return len(s.queue) == 5 })
	for range 5 { // the flood's requests end one by one; then the office's is handled
		gate <- struct{}{}
	}
	resp := office.recv(2 * time.Second)
	if resp == nil {
		t.Fatal("office: no answer")
	}
	if p := checkResponse(t, resp, req, testSecret); p.Code != rad.CodeAccessAccept {
		t.Fatalf("office: %v, want Access-Accept", p.Code)
	}
}
