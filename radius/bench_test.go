package radius

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	rad "layeh.com/radius"

	"github.com/otpgate/otpgate/auth"
)

// authFunc is an Authenticator without the bookkeeping of fakeAuth, so a
// benchmark measures the server and not the fake.
type authFunc func(context.Context, auth.Request) auth.Decision

func (f authFunc) Authenticate(ctx context.Context, r auth.Request) auth.Decision { return f(ctx, r) }

// replyWriter hands each reply to the benchmark loop.
type replyWriter chan []byte

func (w replyWriter) WriteTo(b []byte, _ net.Addr) (int, error) {
	w <- b
	return len(b), nil
}

// BenchmarkAccessRequest: one Access-Request through the server's chain
// (client lookup, parse, Message-Authenticator, reply cache, queue, worker,
// decision, response, metrics, audit) to its reply, with an instant
// Authenticator and no sockets on the request path.
func BenchmarkAccessRequest(b *testing.B) {
	for _, tc := range []struct {
		name, password string
		want           rad.Code
	}{
		{"accept", "accept", rad.CodeAccessAccept},
		{"reject", "wrong", rad.CodeAccessReject},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchServer(b)
			// Distinct Request Authenticators, so none is a retransmission.
			pkts := make([][]byte, b.N)
			for i := range pkts {
				pkts[i] = makeRequest(b, reqOpts{id: byte(i), user: "alice", password: tc.password})
			}
			w := make(replyWriter, 1)
			local := netip.MustParseAddrPort("127.0.0.1:1812")
			nas := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.receive(w, local, nas, pkts[i])
				if r := <-w; rad.Code(r[0]) != tc.want {
					b.Fatalf("request %d: code %d, want %d", i, r[0], tc.want)
				}
			}
		})
	}
}

// BenchmarkMetricsAnswered: the metric updates for one answered request,
// from every core at once as the workers do.
func BenchmarkMetricsAnswered(b *testing.B) {
	for _, tc := range []struct {
		name string
		d    auth.Decision
	}{
		{"accept", auth.Decision{Result: auth.Accept, Reason: auth.ReasonOK}},
		{"reject", auth.Decision{Result: auth.Reject, Reason: auth.ReasonBadCode}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := benchServer(b).metrics
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.answered(tc.d, 3*time.Millisecond)
				}
			})
		})
	}
}

// benchServer is a Server with discarded logs and its workers running on an
// idle loopback socket; benchmarks feed it through receive.
func benchServer(b *testing.B) *Server {
	b.Helper()
	s, err := New(testOptions(), authFunc(byPassword), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), pc) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		// A run short enough to end before Serve started gets ErrServerClosed.
		if err := <-done; err != nil && !errors.Is(err, ErrServerClosed) {
			b.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return s
}
