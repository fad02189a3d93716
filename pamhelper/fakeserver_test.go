package pamhelper

import (
	"crypto/hmac"
	"crypto/md5"
	"net"
	"sync"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// behaviour is how the fake server answers one received packet (n counts
// packets from 1). It returns the datagram to send, or nil to stay silent.
type behaviour func(t *testing.T, req *radius.Packet, n int) []byte

// fakeServer is a raw UDP RADIUS responder on 127.0.0.1 written for these
// tests, independent of the code under test. It drops requests whose
// Message-Authenticator is missing or wrong, as otpgated does.
type fakeServer struct {
	addr   string
	secret []byte

	mu       sync.Mutex
	raw      [][]byte // every datagram received
	users    []string
	passes   []string
	nasIDs   []string
	stations []string
}

func newFakeServer(t *testing.T, secret string, answer behaviour) *fakeServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{addr: pc.LocalAddr().String(), secret: []byte(secret)}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			s.mu.Lock()
			s.raw = append(s.raw, b)
			count := len(s.raw)
			s.mu.Unlock()
			req, err := radius.Parse(b, s.secret)
			if err != nil || !requestMAValid(b, s.secret) {
				t.Errorf("fake server: bad request (parse err %v, or bad Message-Authenticator)", err)
				continue
			}
			pw := rfc2865.UserPassword_Get(req)
			s.mu.Lock()
			s.users = append(s.users, rfc2865.UserName_GetString(req))
			s.passes = append(s.passes, string(pw))
			s.nasIDs = append(s.nasIDs, rfc2865.NASIdentifier_GetString(req))
			s.stations = append(s.stations, rfc2865.CallingStationID_GetString(req))
			s.mu.Unlock()
			if out := answer(t, req, count); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return s
}

func (s *fakeServer) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.raw...)
}

// requestMAValid checks the request's Message-Authenticator, which must be
// present exactly once, by zeroing it in a copy and recomputing the HMAC.
func requestMAValid(b, secret []byte) bool {
	seen := -1
	for i := 20; i+2 <= len(b); i += int(b[i+1]) {
		if b[i+1] < 2 {
			return false
		}
		if b[i] == 80 {
			if seen >= 0 || b[i+1] != 18 {
				return false
			}
			seen = i + 2
		}
	}
	if seen < 0 {
		return false
	}
	tmp := append([]byte(nil), b...)
	clear(tmp[seen : seen+16])
	m := hmac.New(md5.New, secret)
	m.Write(tmp)
	return hmac.Equal(m.Sum(nil), b[seen:seen+16])
}

// respond builds an answer the way a correct server does: MA first, HMAC
// over the packet with the Request Authenticator, then the Response
// Authenticator. mutate, if set, runs on the attributes before signing and
// tamper on the final bytes.
type respondOpts struct {
	noMA    bool
	badMA   bool
	badAuth bool
	wrongID bool
	secret  []byte // sign with this instead of the request's secret
	extra   func(p *radius.Packet)
}

func respond(t testing.TB, req *radius.Packet, code radius.Code, o respondOpts) []byte {
	t.Helper()
	resp := req.Response(code)
	if o.secret != nil {
		resp.Secret = o.secret
	}
	if o.extra != nil {
		o.extra(resp)
	}
	if !o.noMA {
		resp.Attributes = append(radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}, resp.Attributes...)
		raw, err := resp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(md5.New, resp.Secret)
		m.Write(raw)
		copy(resp.Attributes[0].Attribute, m.Sum(nil))
		if o.badMA {
			resp.Attributes[0].Attribute[3] ^= 0xff
		}
	}
	if o.wrongID {
		resp.Identifier++
	}
	b, err := resp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if o.badAuth {
		b[7] ^= 0x01
	}
	return b
}

func answerWith(code radius.Code, o respondOpts) behaviour {
	return func(t *testing.T, req *radius.Packet, _ int) []byte { return respond(t, req, code, o) }
}

func silent(*testing.T, *radius.Packet, int) []byte { return nil }

// deadAddr is a 127.0.0.1 UDP port nothing listens on (it was free a moment ago).
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}
