package radius

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

func TestMessageAuthenticatorRequests(t *testing.T) {
	cfg := testOptions()
	cfg.Clients = append(cfg.Clients, testNAS("legacy", "127.0.0.2", false, true))
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
	if got := checkMessageAuthenticator(good, newMACs([]byte(testSecret))); got != maValid {
		t.Fatalf("valid packet: got %v", got)
	}
	if got := checkMessageAuthenticator(good, newMACs([]byte("other"))); got != maInvalid {
		t.Fatalf("wrong secret: got %v", got)
	}
	none := makeRequest(t, reqOpts{user: "u", password: "p", noMA: true})
	if got := checkMessageAuthenticator(none, newMACs([]byte(testSecret))); got != maAbsent {
		t.Fatalf("no MA: got %v", got)
	}
	if got := checkMessageAuthenticator(good[:21], newMACs([]byte(testSecret))); got != maInvalid {
		t.Fatalf("truncated attribute: got %v", got)
	}
	// MA not first in the request is fine (servers must not care about position).
	p := rad.New(rad.CodeAccessRequest, []byte(testSecret))
	rfc2865.UserName_SetString(p, "u")
	p.Attributes.Add(80, make([]byte, 16))
	b, _ := p.MarshalBinary()
	signRaw(b, 20+3+2, testSecret) // after User-Name (3 octets) and the MA header
	if got := checkMessageAuthenticator(b, newMACs([]byte(testSecret))); got != maValid {
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
		b, err := encodeSigned(resp, newMACs([]byte(testSecret)))
		if err != nil {
			t.Fatal(err)
		}
		checkResponse(t, b, req, testSecret)
	}
}

// encodeSignedLayeh is the straightforward way, kept as the reference:
// marshal with a zero Message-Authenticator first, sign, and let layeh
// compute the Response Authenticator.
func encodeSignedLayeh(resp *rad.Packet) ([]byte, error) {
	resp.Attributes.Del(rad.Type(maType))
	resp.Attributes = append(rad.Attributes{{Type: rad.Type(maType), Attribute: make([]byte, md5.Size)}}, resp.Attributes...)
	raw, err := resp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	m := hmac.New(md5.New, resp.Secret)
	m.Write(raw)
	copy(resp.Attributes[0].Attribute, m.Sum(nil))
	return resp.Encode()
}

// TestEncodeSignedMatchesLayeh: the one-buffer encoder gives the same octets
// as marshal + sign + layeh's Encode, for every response shape, also with
// the pooled HMAC states reused and a Message-Authenticator already there.
func TestEncodeSignedMatchesLayeh(t *testing.T) {
	req := makeRequest(t, reqOpts{id: 77, user: "u", password: "p", proxyStates: [][]byte{[]byte("a"), bytes.Repeat([]byte("s"), 253)}})
	p, err := rad.Parse(req, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	m := newMACs([]byte(testSecret))
	shapes := []struct {
		name  string
		code  rad.Code
		attrs func(*rad.Packet)
	}{
		{"bare accept", rad.CodeAccessAccept, func(*rad.Packet) {}},
		{"reject with proxy states", rad.CodeAccessReject, func(r *rad.Packet) {
			for _, avp := range p.Attributes {
				if avp.Type == proxyStateType {
					r.Attributes.Add(proxyStateType, avp.Attribute)
				}
			}
		}},
		{"challenge", rad.CodeAccessChallenge, func(r *rad.Packet) {
			r.Attributes.Add(rfc2865.ReplyMessage_Type, []byte(defaultPrompt))
			r.Attributes.Add(rfc2865.State_Type, bytes.Repeat([]byte{7}, 32))
		}},
		{"stale MA attribute", rad.CodeAccessAccept, func(r *rad.Packet) {
			r.Attributes.Add(rad.Type(maType), bytes.Repeat([]byte{1}, 16))
			r.Attributes.Add(rfc2865.ReplyMessage_Type, []byte("hi"))
		}},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			for range 3 { // the pool hands back used states
				resp := p.Response(sh.code)
				sh.attrs(resp)
				ref := p.Response(sh.code)
				sh.attrs(ref)
				got, err := encodeSigned(resp, m)
				if err != nil {
					t.Fatal(err)
				}
				want, err := encodeSignedLayeh(ref)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("encodeSigned:\n%x\nlayeh:\n%x", got, want)
				}
				checkResponse(t, got, req, testSecret)
			}
		})
	}
	big := p.Response(rad.CodeAccessAccept)
	big.Attributes.Add(rfc2865.ReplyMessage_Type, make([]byte, 254))
	if _, err := encodeSigned(big, m); err == nil {
		t.Fatal("a 254-octet attribute was encoded")
	}
}

// BenchmarkEncodeSigned compares the one-buffer encoder with the reference
// (run both: go test ./radius -run '^$' -bench EncodeSigned -benchmem).
func BenchmarkEncodeSigned(b *testing.B) {
	req := makeRequest(b, reqOpts{id: 1, user: "u", password: "p"})
	p, err := rad.Parse(req, []byte(testSecret))
	if err != nil {
		b.Fatal(err)
	}
	m := newMACs([]byte(testSecret))
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeSigned(p.Response(rad.CodeAccessAccept), m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("layeh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeSignedLayeh(p.Response(rad.CodeAccessAccept)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
