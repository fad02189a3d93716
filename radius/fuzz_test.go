package radius

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	rad "layeh.com/radius"

	"github.com/otpgate/otpgate/auth"
)

// recordingWriter collects what the server writes.
type recordingWriter struct{ out [][]byte }

func (w *recordingWriter) WriteTo(b []byte, _ net.Addr) (int, error) {
	w.out = append(w.out, append([]byte(nil), b...))
	return len(b), nil
}

// fuzzAuth returns every kind of decision, including invalid ones (empty or
// oversized State, huge messages), chosen by the password.
func fuzzAuth(_ context.Context, r auth.Request) auth.Decision {
	switch {
	case strings.HasPrefix(r.Password, "a"):
		return auth.Decision{Result: auth.Accept, Message: strings.Repeat("é", 300)}
	case strings.HasPrefix(r.Password, "c"):
		return auth.Decision{Result: auth.Challenge, State: []byte(r.Password), Message: r.Password}
	case strings.HasPrefix(r.Password, "e"):
		return auth.Decision{Result: auth.Challenge}
	case strings.HasPrefix(r.Password, "d"):
		return auth.Decision{Result: auth.Drop}
	case strings.HasPrefix(r.Password, "n"):
		return auth.Decision{Result: auth.Reject, Reason: auth.ReasonNotEnrolled, Message: r.Password}
	case strings.HasPrefix(r.Password, "x"):
		return auth.Decision{Result: auth.Result(99)}
	default:
		return auth.Decision{Result: auth.Reject, Reason: auth.ReasonBadCode}
	}
}

// FuzzHandlePacket feeds arbitrary datagrams through the whole packet path
// (lookup, parse, Message-Authenticator, cache, decision, response) without
// the panic safety net: any panic fails the fuzzer.
func FuzzHandlePacket(f *testing.F) {
	seeds := [][]byte{
		makeRequest(f, reqOpts{id: 1, user: "alice", password: "accept"}),
		makeRequest(f, reqOpts{id: 2, user: "alice", password: "c-state", noMA: true, proxyStates: [][]byte{[]byte("p")}}),
		makeRequest(f, reqOpts{id: 3, user: "alice", password: "e", noMA: true, state: []byte("s")}),
		makeRequest(f, reqOpts{id: 4, user: "bob", password: "n", noMA: true, station: "st"}),
		makeRequest(f, reqOpts{id: 5, user: "bob", password: "d", noMA: true}),
		makeRequest(f, reqOpts{id: 6, user: "bob", password: "x", noMA: true}),
		makeRequest(f, reqOpts{code: rad.CodeStatusServer, id: 7}),
		makeRequest(f, reqOpts{id: 8, user: "alice", noPassword: true, noMA: true}),
		{1, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{1, 0, 0, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 80, 2},
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	cfg := testOptions()
	cfg.Handlers, cfg.QueueLen, cfg.ReplyCacheMaxEntries = 4+8, 8, 64
	cfg.Clients = []Client{
		testNAS("open", "127.0.0.1", false, false),
		testNAS("strict", "::1", true, true),
	}
	s, err := New(cfg, &fakeAuth{fn: fuzzAuth}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	local := netip.MustParseAddrPort("127.0.0.1:1812")
	v4 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	v6 := &net.UDPAddr{IP: net.IPv6loopback, Port: 40000}
	f.Fuzz(func(t *testing.T, b []byte, strict bool) {
		w := &recordingWriter{}
		src := v4
		if strict {
			src = v6
		}
		s.receive(w, local, src, b)
		for len(s.queue) > 0 {
			s.process(<-s.queue) // no recover: a panic is a finding
		}
		for _, out := range w.out {
			if !rad.IsAuthenticResponse(out, b, []byte(testSecret)) {
				t.Fatalf("unauthentic response to % x", b)
			}
			if out[20] != 80 || out[21] != 18 {
				t.Fatalf("response without Message-Authenticator first")
			}
		}
	})
}
