package radius

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/auth"
)

func TestResponses(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)

	tests := []struct {
		password  string
		code      rad.Code
		wantReply string // "" means no Reply-Message allowed
		wantState bool
	}{
		{password: "accept", code: rad.CodeAccessAccept},
		{password: "wrong", code: rad.CodeAccessReject},
		{password: "challenge", code: rad.CodeAccessChallenge, wantReply: "Enter code: ", wantState: true},
		{password: "notenrolled", code: rad.CodeAccessReject, wantReply: "Enroll first"},
	}
	for i, tc := range tests {
		t.Run(tc.password, func(t *testing.T) {
			req := makeRequest(t, reqOpts{id: byte(i), user: "alice", password: tc.password})
			p := checkResponse(t, c.exchange(req), req, testSecret)
			if p.Code != tc.code {
				t.Fatalf("code %v, want %v", p.Code, tc.code)
			}
			msgs, _ := rfc2865.ReplyMessage_GetStrings(p)
			if tc.wantReply == "" && len(msgs) != 0 {
				t.Fatalf("Reply-Message %q must not be sent", msgs)
			}
			if tc.wantReply != "" && (len(msgs) != 1 || msgs[0] != tc.wantReply) {
				t.Fatalf("Reply-Message %q, want %q", msgs, tc.wantReply)
			}
			st, _ := rfc2865.State_Gets(p)
			if tc.wantState != (len(st) == 1) {
				t.Fatalf("State %q, want present=%v", st, tc.wantState)
			}
			if tc.wantState && string(st[0]) != "state-0123456789" {
				t.Fatalf("State %q", st[0])
			}
		})
	}
	if got := fa.last(); got.User != "alice" || got.Client != "nas" || got.Mode != auth.ModeAuto || got.Station != "127.0.0.1" {
		t.Fatalf("auth.Request = %+v", got)
	}
}

func TestRequestFields(t *testing.T) {
	cfg := testOptions()
	cfg.Clients[0].Mode = auth.ModeAppend
	vpn := testNAS("vpn", "127.0.0.2", true, true)
	vpn.Mode = auth.ModeOTPOnly
	cfg.Clients = append(cfg.Clients, vpn)
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, cfg, fa)

	c := newClient(t, s.addr)
	req := makeRequest(t, reqOpts{id: 1, user: "bob", password: "accept", station: "203.0.113.9", state: []byte{0, 1, 2}})
	checkResponse(t, c.exchange(req), req, testSecret)
	got := fa.last()
	want := auth.Request{User: "bob", Password: "accept", State: []byte{0, 1, 2}, Client: "nas", Station: "203.0.113.9", Mode: auth.ModeAppend}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	c2 := newClientFrom(t, "127.0.0.2", s.addr)
	req = makeRequest(t, reqOpts{id: 2, user: "bob", password: "accept"})
	checkResponse(t, c2.exchange(req), req, testSecret)
	if got := fa.last(); got.Mode != auth.ModeOTPOnly || got.Client != "vpn" {
		t.Fatalf("got %+v, want client vpn, mode otp-only", got)
	}
}

func TestMalformedAccessRequestIsRejected(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	tests := []struct {
		name string
		opts reqOpts
	}{
		{"no password", reqOpts{user: "alice", noPassword: true}},
		{"no user", reqOpts{password: "accept"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.id = byte(i)
			req := makeRequest(t, tc.opts)
			p := checkResponse(t, c.exchange(req), req, testSecret)
			if p.Code != rad.CodeAccessReject {
				t.Fatalf("code %v, want reject", p.Code)
			}
		})
	}
	if n := fa.calls.Load(); n != 0 {
		t.Fatalf("authenticator called %d times for malformed requests", n)
	}
	if n := valueOf(s.metrics.rejects, string(auth.ReasonMalformed)); n != 2 {
		t.Fatalf("rejects{malformed} = %d, want 2", n)
	}
	// Garbage and other codes are dropped.
	expectDrop(t, s, c, []byte("definitely not radius"), dropMalformed)
	acct := makeRequest(t, reqOpts{code: rad.CodeAccountingRequest, id: 7, user: "x"})
	expectDrop(t, s, c, acct, dropUnsupportedCode)
}

func TestProxyState(t *testing.T) {
	cfg := testOptions()
	cfg.Clients = append(cfg.Clients,
		testNAS("limited", "127.0.0.2", false, true),
		testNAS("legacy", "127.0.0.3", false, false))
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, cfg, fa)
	states := [][]byte{[]byte("first"), {0, 0xff, 7}, []byte("third")}

	for _, pw := range []string{"accept", "wrong", "challenge"} {
		c := newClient(t, s.addr)
		req := makeRequest(t, reqOpts{id: 3, user: "alice", password: pw, proxyStates: states})
		p := checkResponse(t, c.exchange(req), req, testSecret)
		got, _ := rfc2865.ProxyState_Gets(p)
		if fmt.Sprint(got) != fmt.Sprint(states) {
			t.Fatalf("%s: Proxy-State %q, want %q in order", pw, got, states)
		}
	}

	limited := newClientFrom(t, "127.0.0.2", s.addr)
	expectDrop(t, s, limited, makeRequest(t, reqOpts{id: 4, user: "a", password: "accept", noMA: true, proxyStates: states}), dropProxyState)
	req := makeRequest(t, reqOpts{id: 5, user: "a", password: "accept", noMA: true})
	checkResponse(t, limited.exchange(req), req, testSecret)
	req = makeRequest(t, reqOpts{id: 6, user: "a", password: "accept", proxyStates: states})
	checkResponse(t, limited.exchange(req), req, testSecret)

	legacy := newClientFrom(t, "127.0.0.3", s.addr)
	req = makeRequest(t, reqOpts{id: 7, user: "a", password: "accept", noMA: true, proxyStates: states})
	p := checkResponse(t, legacy.exchange(req), req, testSecret)
	if got, _ := rfc2865.ProxyState_Gets(p); len(got) != 3 {
		t.Fatalf("legacy client: %d Proxy-States echoed, want 3", len(got))
	}
}

func TestReplyCacheOverNetwork(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)

	for _, pw := range []string{"accept", "wrong", "challenge"} {
		t.Run(pw, func(t *testing.T) {
			calls := fa.calls.Load()
			hits := value(s.metrics.cacheHits)
			req := makeRequest(t, reqOpts{id: 42, user: "alice", password: pw})
			r1 := c.exchange(req)
			r2 := c.exchange(req)
			if !bytes.Equal(r1, r2) {
				t.Fatal("retransmission got different response bytes")
			}
			checkResponse(t, r2, req, testSecret)
			if n := fa.calls.Load() - calls; n != 1 {
				t.Fatalf("authenticator called %d times, want 1", n)
			}
			if value(s.metrics.cacheHits) != hits+1 {
				t.Fatal("reply_cache_hits not counted")
			}
			// Same Identifier, new Request Authenticator: a new request.
			req2 := makeRequest(t, reqOpts{id: 42, user: "alice", password: pw})
			checkResponse(t, c.exchange(req2), req2, testSecret)
			if n := fa.calls.Load() - calls; n != 2 {
				t.Fatalf("authenticator called %d times after a new authenticator, want 2", n)
			}
		})
	}

	t.Run("other source port is another request", func(t *testing.T) {
		calls := fa.calls.Load()
		req := makeRequest(t, reqOpts{id: 43, user: "alice", password: "accept"})
		c.exchange(req)
		newClient(t, s.addr).exchange(req)
		if n := fa.calls.Load() - calls; n != 2 {
			t.Fatalf("authenticator called %d times, want 2", n)
		}
	})

	t.Run("auth drop is not cached", func(t *testing.T) {
		calls := fa.calls.Load()
		req := makeRequest(t, reqOpts{id: 44, user: "alice", password: "drop"})
		c.send(req)
		waitFor(t, "first evaluation", func() bool { return fa.calls.Load() == calls+1 })
		if r := c.recv(100 * time.Millisecond); r != nil {
			t.Fatal("a Drop decision was answered")
		}
		c.send(req)
		waitFor(t, "retransmission evaluated", func() bool { return fa.calls.Load() == calls+2 })
	})
}

// TestOverloadDropNotAudited: a request the Authenticator drops gets no
// answer and no audit line (its retransmission's decision is audited), so a
// flooding client refused at once cannot write audit lines at its own rate;
// one warning a minute per source says it happens.
func TestOverloadDropNotAudited(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	const n = 20
	for i := range n {
		c.send(makeRequest(t, reqOpts{id: byte(i), user: "alice", password: "drop"}))
	}
	waitFor(t, "every request dropped", func() bool { return valueOf(s.metrics.drops, dropOverload) == n })
	if a := s.audit.String(); a != "" {
		t.Fatalf("audit lines for dropped requests:\n%s", a)
	}
	if w := strings.Count(s.log.String(), "dropped requests: the password-hash workers are busy"); w != 1 {
		t.Fatalf("%d overload warnings for %d drops from one source, want 1:\n%s", w, n, s.log.String())
	}
}

func TestReplyCacheInFlightDuplicate(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		started <- struct{}{}
		<-release
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	req := makeRequest(t, reqOpts{id: 1, user: "alice", password: "x"})
	c.send(req)
	<-started
	expectDrop(t, s, c, req, dropDuplicate)
	expectDrop(t, s, c, req, dropDuplicate)
	close(release)
	checkResponse(t, c.recv(2*time.Second), req, testSecret)
	if r := c.recv(200 * time.Millisecond); r != nil {
		t.Fatal("more than one reply for one request")
	}
	if n := fa.calls.Load(); n != 1 {
		t.Fatalf("authenticator called %d times, want 1", n)
	}
}

func TestUnknownClientDropped(t *testing.T) {
	cfg := testOptions()
	cfg.Clients = []Client{testNAS("elsewhere", "10.0.0.0/8", true, true)}
	fa := &fakeAuth{}
	s := startServer(t, cfg, fa)
	c := newClient(t, s.addr)
	for i := range 3 {
		expectDrop(t, s, c, makeRequest(t, reqOpts{id: byte(i), user: "a", password: "b"}), dropUnknownClient)
	}
	if fa.calls.Load() != 0 {
		t.Fatal("unknown client reached the authenticator")
	}
	if n := strings.Count(s.log.String(), "unknown client"); n != 1 {
		t.Fatalf("%d warn lines for one unknown source, want 1 per minute", n)
	}
}

func TestIPv6Server(t *testing.T) {
	if pc, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
		skipOutsideCI(t, "no IPv6 loopback: %v", err)
	} else {
		pc.Close()
	}
	cfg := testOptions()
	v6 := testNAS("v6", "::1/128", true, true)
	v6.Secret = testSecret + "-v6"
	cfg.Clients = append(cfg.Clients, v6)
	fa := &fakeAuth{}
	s := startServerOn(t, "[::1]:0", cfg, fa)
	c := newClient(t, s.addr)
	req := makeRequest(t, reqOpts{id: 1, user: "a", password: "b", signSecret: testSecret + "-v6"})
	checkResponse(t, c.exchange(req), req, testSecret+"-v6")
	if got := fa.last(); got.Client != "v6" || got.Station != "::1" {
		t.Fatalf("got %+v", got)
	}
}

func TestStatusServer(t *testing.T) {
	fa := &fakeAuth{}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	req := makeRequest(t, reqOpts{code: rad.CodeStatusServer, id: 3})
	p := checkResponse(t, c.exchange(req), req, testSecret)
	if p.Code != rad.CodeAccessAccept {
		t.Fatalf("code %v, want Access-Accept", p.Code)
	}
	if fa.calls.Load() != 0 {
		t.Fatal("Status-Server reached the authenticator")
	}
	cfg := testOptions()
	cfg.Clients[0].RequireMessageAuthenticator = false
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	expectDrop(t, s, c, makeRequest(t, reqOpts{code: rad.CodeStatusServer, id: 4, noMA: true}), dropMissingMA)
}

// TestStatusServerWithoutMessageAuthenticatorWarnsTruly: a Status-Server
// without Message-Authenticator is dropped whatever the client's
// require_message_authenticator (RFC 5997), and the warning says what
// helps: not setting the option to false, which may already be false.
func TestStatusServerWithoutMessageAuthenticatorWarnsTruly(t *testing.T) {
	for _, requireMA := range []bool{false, true} {
		t.Run(fmt.Sprintf("require_message_authenticator=%v", requireMA), func(t *testing.T) {
			cfg := testOptions()
			cfg.Clients = []Client{testNAS("nas", "127.0.0.1", requireMA, true)}
			s := startServer(t, cfg, &fakeAuth{})
			c := newClient(t, s.addr)
			expectDrop(t, s, c, makeRequest(t, reqOpts{code: rad.CodeStatusServer, id: 4, noMA: true}), dropMissingMA)
			logs := s.log.String()
			if !strings.Contains(logs, "dropped Status-Server without Message-Authenticator; RFC 5997 requires one whatever require_message_authenticator says") {
				t.Errorf("no warning that names Status-Server and RFC 5997:\n%s", logs)
			}
			if strings.Contains(logs, "set require_message_authenticator = false") {
				t.Errorf("the warning advises an option that does not help Status-Server:\n%s", logs)
			}
		})
	}
}

func TestPanicInAuthenticator(t *testing.T) {
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		if r.User == "boom" {
			panic("authenticator exploded with " + r.Password)
		}
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	boom := makeRequest(t, reqOpts{id: 1, user: "boom", password: "hunter2-secret"})
	for i := range 2 {
		c.send(boom)
		waitFor(t, "panic counted", func() bool { return value(s.metrics.panics) == uint64(i+1) })
		if r := c.recv(100 * time.Millisecond); r != nil {
			t.Fatal("a panicking request was answered")
		}
	}
	for i := range 10 {
		req := makeRequest(t, reqOpts{id: byte(10 + i), user: "alice", password: "x"})
		checkResponse(t, c.exchange(req), req, testSecret)
	}
	if strings.Contains(s.log.String(), "hunter2") {
		t.Fatal("the panic value (with a password) was logged")
	}
	if !strings.Contains(s.log.String(), "panic") {
		t.Fatal("the panic was not logged")
	}
}

func TestRejectDelayDoesNotBlockWorkers(t *testing.T) {
	cfg := testOptions()
	cfg.Handlers = 1 // the delayed reject must not hold the only one
	// The delay is long next to the bound on the accept, so that a loaded
	// machine cannot pass for a blocked worker.
	const delay = 2 * time.Second
	cfg.RejectDelay = delay
	s := startServer(t, cfg, &fakeAuth{fn: byPassword})
	rc, ac := newClient(t, s.addr), newClient(t, s.addr)

	start := time.Now()
	rej := makeRequest(t, reqOpts{id: 1, user: "a", password: "wrong"})
	rc.send(rej)
	acc := makeRequest(t, reqOpts{id: 2, user: "a", password: "accept"})
	checkResponse(t, ac.exchange(acc), acc, testSecret)
	if d := time.Since(start); d > delay/2 {
		t.Fatalf("accept took %v behind a delayed reject: the worker was blocked", d)
	}
	// A retransmission during the delay is an in-flight duplicate.
	expectDrop(t, s, rc, rej, dropDuplicate)
	r := rc.recv(2 * delay)
	if r == nil {
		t.Fatal("no reject")
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("reject after %v, want >= %v", d, delay)
	}
	p := checkResponse(t, r, rej, testSecret)
	if p.Code != rad.CodeAccessReject {
		t.Fatalf("code %v", p.Code)
	}
}

func TestConcurrentRequests(t *testing.T) {
	cfg := testOptions()
	cfg.Handlers, cfg.QueueLen = 4+1100, 1100
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, cfg, fa)
	const nasCount, perNAS = 10, 100

	var wg sync.WaitGroup
	errs := make(chan error, nasCount)
	for n := range nasCount {
		c := newClient(t, s.addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- runNAS(c, n, perNAS)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := fa.calls.Load(); n != nasCount*perNAS {
		t.Fatalf("authenticator called %d times, want %d (each request exactly once)", n, nasCount*perNAS)
	}
	if d := valueOf(s.metrics.drops, dropOverload); d != 0 {
		t.Fatalf("%d overload drops with a queue sized for the load", d)
	}
}

// runNAS sends perNAS requests with distinct Identifiers at once and
// retransmits unanswered ones every 500 ms like a NAS, until all are
// answered with a valid response (at most 10 s).
func runNAS(c *testClient, n, perNAS int) error {
	reqs := make(map[byte][]byte, perNAS)
	want := make(map[byte]rad.Code, perNAS)
	for i := range perNAS {
		pw, code := "accept", rad.CodeAccessAccept
		if i%3 == 1 {
			pw, code = "wrong", rad.CodeAccessReject
		}
		b := makeRequest(c.t, reqOpts{id: byte(i), user: fmt.Sprintf("user%d-%d", n, i), password: pw})
		reqs[byte(i)], want[byte(i)] = b, code
	}
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 4096)
	for len(reqs) > 0 && time.Now().Before(deadline) {
		for _, b := range reqs {
			if _, err := c.conn.WriteTo(b, c.srv); err != nil {
				return err
			}
		}
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for len(reqs) > 0 {
			k, _, err := c.conn.ReadFrom(buf)
			if err != nil {
				break // timeout: retransmit what is left
			}
			resp := buf[:k]
			req, ok := reqs[resp[1]]
			if !ok {
				continue // a reply to a retransmission already answered
			}
			if !rad.IsAuthenticResponse(resp, req, []byte(testSecret)) || rad.Code(resp[0]) != want[resp[1]] {
				return fmt.Errorf("nas %d id %d: bad response code %d", n, resp[1], resp[0])
			}
			delete(reqs, resp[1])
		}
	}
	if len(reqs) > 0 {
		return fmt.Errorf("nas %d: %d requests never answered", n, len(reqs))
	}
	return nil
}

func TestOverloadBounded(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testOptions()
	cfg.Handlers, cfg.QueueLen = 1+2, 2
	cfg.ReplyCacheMaxEntries = 16
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		time.Sleep(20 * time.Millisecond)
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s, err := New(cfg, fa, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), pc) }()

	c := newClient(t, pc.LocalAddr().(*net.UDPAddr))
	const total = 200
	for i := range total {
		c.send(makeRequest(t, reqOpts{id: byte(i), user: "u", password: "p"}))
	}
	waitFor(t, "all datagrams handled", func() bool {
		handled := valueOf(s.metrics.drops, dropOverload) + uint64(fa.calls.Load())
		return handled >= total-10 && len(s.queue) == 0 // loopback may lose a few
	})
	if d := valueOf(s.metrics.drops, dropOverload); d < total/2 {
		t.Fatalf("only %d overload drops for %d requests on 1 worker and a queue of 2", d, total)
	}
	if n := s.cache.len(); n > 16 {
		t.Fatalf("reply cache holds %d entries, bound is 16", n)
	}
	if g := runtime.NumGoroutine(); g > before+10 {
		t.Fatalf("%d goroutines under overload, %d before: growth per request", g, before)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	pc.Close()
	c.conn.Close()
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestReloadKeepsInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		if r.User == "slow" {
			started <- struct{}{}
			<-release
		}
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	slow := makeRequest(t, reqOpts{id: 1, user: "slow", password: "p"})
	c.send(slow)
	<-started

	const newSecret = "a-brand-new-secret-after-reload"
	cfg := testOptions()
	cfg.Clients[0].Secret = newSecret
	cfg.Clients[0].Mode = auth.ModeChallenge
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	bad := testOptions()
	bad.Clients[0].Address = "not an address"
	if err := s.Reload(bad); err == nil {
		t.Fatal("Reload accepted a bad address")
	}
	close(release)
	// The in-flight request is answered, signed with the secret it came with.
	checkResponse(t, c.recv(2*time.Second), slow, testSecret)

	expectDrop(t, s, c, makeRequest(t, reqOpts{id: 2, user: "u", password: "p"}), dropBadMA)
	req := makeRequest(t, reqOpts{id: 3, user: "u", password: "p", signSecret: newSecret})
	checkResponse(t, c.exchange(req), req, newSecret)
	if m := fa.last().Mode; m != auth.ModeChallenge {
		t.Fatalf("mode after reload %q, want challenge", m)
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		started <- struct{}{}
		<-release
		return auth.Decision{Result: auth.Reject, Reason: auth.ReasonBadCode}
	}}
	cfg := testOptions()
	cfg.RejectDelay = 100 * time.Millisecond
	s, err := New(cfg, fa, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), pc) }()
	c := newClient(t, pc.LocalAddr().(*net.UDPAddr))
	req := makeRequest(t, reqOpts{id: 1, user: "u", password: "p"})
	c.send(req)
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case <-shut:
		t.Fatal("Shutdown returned with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	// The drained request was answered before Shutdown returned.
	checkResponse(t, c.recv(time.Second), req, testSecret)
	if err := s.Serve(context.Background(), pc); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestAuditAndLogsHoldNoSecrets(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	req := makeRequest(t, reqOpts{id: 1, user: "alice", password: "challenge", station: "198.51.100.7"})
	checkResponse(t, c.exchange(req), req, testSecret)
	req = makeRequest(t, reqOpts{id: 2, user: "alice", password: "wrong-password-123456", state: []byte("state-0123456789")})
	checkResponse(t, c.exchange(req), req, testSecret)
	expectDrop(t, s, c, makeRequest(t, reqOpts{id: 3, user: "alice", password: "x", signSecret: "other"}), dropBadMA)

	lines := strings.Split(strings.TrimSpace(s.audit.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d audit lines, want 2:\n%s", len(lines), s.audit.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"user": "alice", "client": "nas", "station": "127.0.0.1", "mode": "auto",
		"result": "reject", "reason": "bad_password", "recovery": false} {
		if rec[k] != want {
			t.Errorf("audit %s = %v, want %v", k, rec[k], want)
		}
	}
	for _, k := range []string{"time", "duration_ms"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("audit line lacks %s", k)
		}
	}
	all := s.audit.String() + s.log.String()
	for _, secret := range []string{"wrong-password-123456", "state-0123456789", testSecret} {
		if strings.Contains(all, secret) {
			t.Errorf("logs contain a secret value %q", secret)
		}
	}
}

func TestMetricsHandler(t *testing.T) {
	s := startServer(t, testOptions(), &fakeAuth{fn: byPassword})
	c := newClient(t, s.addr)
	for i, pw := range []string{"accept", "wrong", "challenge"} {
		req := makeRequest(t, reqOpts{id: byte(i), user: "a", password: pw})
		c.exchange(req)
		if i == 0 {
			c.exchange(req)
		}
	}
	// A pedantic registry also checks that Collect matches Describe.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Server)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d:\n%s", rec.Code, rec.Body)
	}
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`otpgate_radius_requests_total{code="accept"} 1`,
		`otpgate_radius_requests_total{code="challenge"} 1`,
		`otpgate_radius_rejects_total{reason="bad_password"} 1`,
		`otpgate_radius_drops_total{reason="overload"} 0`,
		`otpgate_radius_drops_total{reason="store_unavailable"} 0`,
		`otpgate_radius_drops_total{reason="not_ready"} 0`,
		`otpgate_radius_drops_total{reason="unsupported_code"} 0`,
		`otpgate_radius_drops_total{reason="internal_error"} 0`,
		`otpgate_radius_drops_total{reason="bad_request_authenticator"} 0`,
		`otpgate_radius_reply_cache_hits_total 1`,
		`otpgate_radius_request_duration_seconds_count 3`,
		`otpgate_radius_request_duration_seconds_bucket{le="+Inf"} 3`,
		`otpgate_radius_reply_cache_entries 3`,
		"# TYPE otpgate_radius_request_duration_seconds histogram",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestMisconfiguredNASWarns: a known client whose requests are dropped for
// a wrong secret or a missing Message-Authenticator gets one warning per
// source per minute naming the likely fix, and the secret never appears.
func TestMisconfiguredNASWarns(t *testing.T) {
	s := startServer(t, testOptions(), &fakeAuth{})
	c := newClient(t, s.addr)
	for i := range 3 {
		expectDrop(t, s, c, makeRequest(t, reqOpts{id: byte(i), user: "a", password: "b", signSecret: "not-the-secret"}), dropBadMA)
		expectDrop(t, s, c, makeRequest(t, reqOpts{id: byte(10 + i), user: "a", password: "b", noMA: true}), dropMissingMA)
	}
	logs := s.log.String()
	for _, want := range []string{"is the shared secret the same on the NAS?", "require_message_authenticator = false for this client only"} {
		if n := strings.Count(logs, want); n != 1 {
			t.Errorf("%d warnings containing %q for 3 drops from one source, want 1:\n%s", n, want, logs)
		}
	}
	if strings.Contains(logs, testSecret) || strings.Contains(logs, "not-the-secret") {
		t.Error("a shared secret reached the log")
	}
}

// TestShedBeforeParsing: with every handler busy and the client's share of
// the queue full, an
// Access-Request is dropped before its parse and Message-Authenticator
// check (a request signed with the wrong secret counts as overload, not as
// a bad Message-Authenticator), while Status-Server is still answered.
func TestShedBeforeParsing(t *testing.T) {
	cfg := testOptions()
	cfg.Handlers, cfg.QueueLen = 2, 1
	gate := make(chan struct{})
	fa := &fakeAuth{fn: func(ctx context.Context, r auth.Request) auth.Decision {
		<-gate
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}}
	s := startServer(t, cfg, fa)
	defer close(gate) // before the cleanup's Shutdown
	c := newClient(t, s.addr)
	for id := range 3 { // one at a time: a burst may overflow the queue
		c.send(makeRequest(t, reqOpts{id: byte(id), user: "u", password: "p"}))
		waitFor(t, "the request taken or queued", func() bool {
			return fa.calls.Load()+int64(len(s.queue)) == int64(id+1)
		})
	}
	if int64(len(s.queue)) != s.queueShare || valueOf(s.metrics.drops, dropOverload) != 0 {
		t.Fatalf("queue %d (share %d), %d dropped; want the client's share full and none dropped", len(s.queue), s.queueShare, valueOf(s.metrics.drops, dropOverload))
	}
	c.send(makeRequest(t, reqOpts{id: 10, user: "u", password: "p", signSecret: "not-the-secret"}))
	waitFor(t, "the fourth request shed", func() bool { return valueOf(s.metrics.drops, dropOverload) == 1 })
	if n := valueOf(s.metrics.drops, dropBadMA); n != 0 {
		t.Fatalf("%d bad Message-Authenticator drops: the shed request was parsed", n)
	}
	req := makeRequest(t, reqOpts{code: rad.CodeStatusServer, id: 11})
	if p := checkResponse(t, c.exchange(req), req, testSecret); p.Code != rad.CodeAccessAccept {
		t.Fatalf("Status-Server under overload: %v, want Access-Accept", p.Code)
	}
}
