package radius

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/auth"

	"github.com/otpgate/otpgate/internal/testtool"
)

const testSecret = "s3cret-shared-with-the-nas-0123"

// fakeAuth is a scripted Authenticator that counts its calls.
type fakeAuth struct {
	calls atomic.Int64
	fn    func(ctx context.Context, r auth.Request) auth.Decision
	mu    sync.Mutex
	seen  []auth.Request
}

func (f *fakeAuth) Authenticate(ctx context.Context, r auth.Request) auth.Decision {
	f.calls.Add(1)
	f.mu.Lock()
	f.seen = append(f.seen, r)
	f.mu.Unlock()
	if f.fn == nil {
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	}
	return f.fn(ctx, r)
}

func (f *fakeAuth) last() auth.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) == 0 {
		return auth.Request{}
	}
	return f.seen[len(f.seen)-1]
}

// byPassword answers by the password: "accept", "challenge", "notenrolled",
// anything else is a bad password.
func byPassword(_ context.Context, r auth.Request) auth.Decision {
	switch r.Password {
	case "accept":
		return auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}
	case "challenge":
		return auth.Decision{Result: auth.Challenge, Reason: auth.ReasonOK, State: []byte("state-0123456789"), Message: "Enter code: "}
	case "notenrolled":
		return auth.Decision{Result: auth.Reject, Reason: auth.ReasonNotEnrolled, Message: "Enroll first"}
	case "drop":
		return auth.Decision{Result: auth.Drop, Reason: auth.ReasonOverload}
	default:
		return auth.Decision{Result: auth.Reject, Reason: auth.ReasonBadPassword, Message: "bad password (must never be sent)"}
	}
}

// testOptions has one auto-mode client for 127.0.0.1 that requires
// Message-Authenticator, 4+64 handlers and a queue of 64. New fills in no
// defaults, so every field is set.
func testOptions() Options {
	return Options{
		Clients:              []Client{testNAS("nas", "127.0.0.1", true, true)},
		ReplyCacheTTL:        30 * time.Second,
		ReplyCacheMaxEntries: 65536,
		Handlers:             4 + 64,
		QueueLen:             64,
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = testtool.Buffer

type testServer struct {
	*Server
	addr  *net.UDPAddr
	pc    net.PacketConn
	log   *syncBuffer
	audit *syncBuffer
}

// startServer runs a Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, opt Options, a Authenticator) *testServer {
	t.Helper()
	return startServerOn(t, "127.0.0.1:0", opt, a)
}

func startServerOn(t *testing.T, laddr string, opt Options, a Authenticator) *testServer {
	t.Helper()
	return startServing(t, laddr, opt, a, (*Server).Serve)
}

// startServing runs serve (Serve or ServeAccounting) on a socket bound to
// laddr until the test ends.
func startServing(t *testing.T, laddr string, opt Options, a Authenticator, serve func(*Server, context.Context, net.PacketConn) error) *testServer {
	t.Helper()
	logBuf, auditBuf := &syncBuffer{}, &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	audit := slog.New(slog.NewJSONHandler(auditBuf, nil))
	s, err := New(opt, a, log, audit)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pc, err := net.ListenPacket("udp", laddr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- serve(s, context.Background(), pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
		pc.Close()
		if testing.Verbose() && t.Failed() {
			os.Stderr.WriteString(logBuf.String())
		}
	})
	return &testServer{Server: s, addr: pc.LocalAddr().(*net.UDPAddr), pc: pc, log: logBuf, audit: auditBuf}
}

// reqOpts shapes a test Access-Request.
type reqOpts struct {
	code        rad.Code // default Access-Request
	id          byte
	user        string
	password    string
	noPassword  bool
	state       []byte
	proxyStates [][]byte
	station     string
	noMA        bool
	signSecret  string // secret for MA and User-Password; default testSecret
	extraMA     bool   // a second (valid-looking) Message-Authenticator
	shortMA     bool   // a Message-Authenticator of length 17
}

// makeRequest builds and encodes a request the way a NAS does, with its
// own Message-Authenticator code (independent of the server's).
func makeRequest(t testing.TB, o reqOpts) []byte {
	t.Helper()
	secret := []byte(testSecret)
	if o.signSecret != "" {
		secret = []byte(o.signSecret)
	}
	code := o.code
	if code == 0 {
		code = rad.CodeAccessRequest
	}
	p := rad.New(code, secret)
	p.Identifier = o.id
	if !o.noMA {
		p.Attributes.Add(80, make([]byte, 16))
	}
	if o.extraMA {
		p.Attributes.Add(80, make([]byte, 16))
	}
	if o.shortMA {
		p.Attributes.Add(80, make([]byte, 15))
	}
	if o.user != "" {
		rfc2865.UserName_SetString(p, o.user)
	}
	if !o.noPassword && code == rad.CodeAccessRequest {
		if err := rfc2865.UserPassword_SetString(p, o.password); err != nil {
			t.Fatal(err)
		}
	}
	if o.state != nil {
		rfc2865.State_Set(p, o.state)
	}
	if o.station != "" {
		rfc2865.CallingStationID_SetString(p, o.station)
	}
	rfc2865.NASIdentifier_SetString(p, "test-nas")
	for _, ps := range o.proxyStates {
		p.Attributes.Add(rfc2865.ProxyState_Type, ps)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !o.noMA {
		// The first attribute is our MA: value at offset 22.
		m := hmac.New(md5.New, secret)
		m.Write(b)
		copy(b[22:38], m.Sum(nil))
		if o.extraMA {
			copy(b[40:56], b[22:38])
		}
	}
	return b
}

// testClient is a NAS socket on 127.0.0.1.
type testClient struct {
	t    testing.TB
	conn *net.UDPConn
	srv  *net.UDPAddr
}

func newClient(t testing.TB, srv *net.UDPAddr) *testClient {
	t.Helper()
	laddr := "127.0.0.1:0"
	if srv.IP.To4() == nil {
		laddr = "[::1]:0"
	}
	c, err := net.ListenPacket("udp", laddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c.(*net.UDPConn), srv: srv}
}

func (c *testClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteTo(b, c.srv); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits up to d for one datagram; nil on timeout.
func (c *testClient) recv(d time.Duration) []byte {
	c.t.Helper()
	buf := make([]byte, 4096)
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.conn.ReadFrom(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		c.t.Fatal(err)
	}
	return buf[:n]
}

// exchange sends b and returns the reply, failing the test after 2 s.
func (c *testClient) exchange(b []byte) []byte {
	c.t.Helper()
	c.send(b)
	r := c.recv(2 * time.Second)
	if r == nil {
		c.t.Fatalf("no reply to request id %d", b[1])
	}
	return r
}

// checkResponse verifies a reply the way a strict NAS does: the Response
// Authenticator, Message-Authenticator present, FIRST and valid (computed
// here independently), and the Identifier.
func checkResponse(t testing.TB, resp, req []byte, secret string) *rad.Packet {
	t.Helper()
	if !rad.IsAuthenticResponse(resp, req, []byte(secret)) {
		t.Fatalf("response authenticator invalid")
	}
	if resp[1] != req[1] {
		t.Fatalf("response id %d, want %d", resp[1], req[1])
	}
	if len(resp) < 38 || resp[20] != 80 || resp[21] != 18 {
		t.Fatalf("Message-Authenticator is not the first attribute: % x", resp[20:min(len(resp), 24)])
	}
	cp := bytes.Clone(resp)
	copy(cp[4:20], req[4:20])
	clear(cp[22:38])
	m := hmac.New(md5.New, []byte(secret))
	m.Write(cp)
	if !hmac.Equal(m.Sum(nil), resp[22:38]) {
		t.Fatalf("response Message-Authenticator invalid")
	}
	p, err := rad.Parse(resp, []byte(secret))
	if err != nil {
		t.Fatalf("parse response: %v", err)
	}
	n := 0
	for _, a := range p.Attributes {
		if a.Type == 80 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d Message-Authenticators in response, want 1", n)
	}
	return p
}

// waitFor polls cond for up to 3 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectDrop sends b, waits for the drop counter of reason to rise and
// checks that no reply arrives.
func expectDrop(t testing.TB, s *testServer, c *testClient, b []byte, reason string) {
	t.Helper()
	before := valueOf(s.metrics.drops, reason)
	c.send(b)
	waitFor(t, "drop "+reason, func() bool { return valueOf(s.metrics.drops, reason) > before })
	if r := c.recv(100 * time.Millisecond); r != nil {
		t.Fatalf("got a reply (code %d) to a packet that must be dropped (%s)", r[0], reason)
	}
}

// testNAS is an auto-mode client with testSecret.
func testNAS(name, addr string, requireMA, limitPS bool) Client {
	return Client{Name: name, Address: addr, Secret: testSecret,
		RequireMessageAuthenticator: requireMA, LimitProxyState: limitPS, Mode: auth.ModeAuto}
}

// skipOutsideCI skips a test whose environment lacks something (an
// address to bind), as testtool.Require does for a program: under
// CI=true it fails instead, since CI must have it.
func skipOutsideCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI must have it)", args...)
	}
	t.Skipf(format, args...)
}

// newClientFrom is a NAS socket bound to a given loopback address.
func newClientFrom(t testing.TB, ip string, srv *net.UDPAddr) *testClient {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		skipOutsideCI(t, "cannot bind %s: %v", ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c.(*net.UDPConn), srv: srv}
}

// signRaw writes the HMAC-MD5 of b into the 16 octets at off.
func signRaw(b []byte, off int, secret string) {
	clear(b[off : off+16])
	m := hmac.New(md5.New, []byte(secret))
	m.Write(b)
	copy(b[off:off+16], m.Sum(nil))
}

// value reads a counter for an assertion.
func value(c prometheus.Counter) uint64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return uint64(m.GetCounter().GetValue())
}

// valueOf reads the series of v with the given label value.
func valueOf(v *counterVec, label string) uint64 {
	return value(v.WithLabelValues(label))
}
