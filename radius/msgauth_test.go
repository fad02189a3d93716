package radius

import (
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

func TestMessageAuthenticatorRequests(t *testing.T) {
	cfg := testConfig()
	cfg.Clients = append(cfg.Clients, cfgClient("legacy", "127.0.0.2", false, true))
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, cfg, fa)
	c := newClient(t, s.addr)

	tests := []struct {
		name   string
		opts   reqOpts
		legacy bool   // send from 127.0.0.2 (MA optional)
		flip   int    // flip this byte after signing (0: none)
		drop   string // expected drop reason; "" means answered
	}{
		{name: "valid", opts: reqOpts{user: "alice", password: "accept"}},
		{name: "wrong secret", opts: reqOpts{user: "alice", password: "accept", signSecret: "not-the-secret"}, drop: dropBadMA},
		{name: "flipped byte in attributes", opts: reqOpts{user: "alice", password: "accept"}, flip: 40, drop: dropBadMA},
		{name: "flipped byte in authenticator", opts: reqOpts{user: "alice", password: "accept"}, flip: 5, drop: dropBadMA},
		{name: "absent and required", opts: reqOpts{user: "alice", password: "accept", noMA: true}, drop: dropMissingMA},
		{name: "absent and optional", opts: reqOpts{user: "alice", password: "accept", noMA: true}, legacy: true},
		{name: "present and optional but wrong", opts: reqOpts{user: "alice", password: "accept", signSecret: "nope"}, legacy: true, drop: dropBadMA},
		{name: "duplicate attribute", opts: reqOpts{user: "alice", password: "accept", extraMA: true}, drop: dropBadMA},
		{name: "wrong length", opts: reqOpts{user: "alice", password: "accept", noMA: true, shortMA: true}, drop: dropBadMA},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.id = byte(i)
			b := makeRequest(t, tc.opts)
			if tc.flip > 0 {
				b[tc.flip] ^= 0x01
			}
			cl := c
			if tc.legacy {
				cl = newClientFrom(t, "127.0.0.2", s.addr)
			}
			if tc.drop != "" {
				calls, entries := fa.calls.Load(), s.cache.len()
				expectDrop(t, s, cl, b, tc.drop)
				if fa.calls.Load() != calls {
					t.Fatal("a dropped packet reached the authenticator")
				}
				if s.cache.len() != entries {
					t.Fatal("a dropped packet touched the reply cache")
				}
				return
			}
			resp := cl.exchange(b)
			p := checkResponse(t, resp, b, testSecret)
			if p.Code != rad.CodeAccessAccept {
				t.Fatalf("code %v, want Access-Accept", p.Code)
			}
		})
	}
}

func TestCheckMessageAuthenticatorUnit(t *testing.T) {
	good := makeRequest(t, reqOpts{user: "u", password: "p"})
	if got := checkMessageAuthenticator(good, []byte(testSecret)); got != maValid {
		t.Fatalf("valid packet: got %v", got)
	}
	if got := checkMessageAuthenticator(good, []byte("other")); got != maInvalid {
		t.Fatalf("wrong secret: got %v", got)
	}
	none := makeRequest(t, reqOpts{user: "u", password: "p", noMA: true})
	if got := checkMessageAuthenticator(none, []byte(testSecret)); got != maAbsent {
		t.Fatalf("no MA: got %v", got)
	}
	if got := checkMessageAuthenticator(good[:21], []byte(testSecret)); got != maInvalid {
		t.Fatalf("truncated attribute: got %v", got)
	}
	// MA not first in the request is fine (servers must not care about position).
	p := rad.New(rad.CodeAccessRequest, []byte(testSecret))
	rfc2865.UserName_SetString(p, "u")
	p.Attributes.Add(80, make([]byte, 16))
	b, _ := p.MarshalBinary()
	signRaw(b, 20+3+2, testSecret) // after User-Name (3 octets) and the MA header
	if got := checkMessageAuthenticator(b, []byte(testSecret)); got != maValid {
		t.Fatalf("MA in second position: got %v", got)
	}
}

func TestEncodeSignedRoundTrip(t *testing.T) {
	req := makeRequest(t, reqOpts{id: 9, user: "u", password: "p", proxyStates: [][]byte{[]byte("a")}})
	p, err := rad.Parse(req, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []rad.Code{rad.CodeAccessAccept, rad.CodeAccessReject, rad.CodeAccessChallenge} {
		resp := p.Response(code)
		resp.Attributes.Add(rfc2865.ReplyMessage_Type, []byte("hi"))
		b, err := encodeSigned(resp)
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, b, req, testSecret)
	}
}
