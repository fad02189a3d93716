package radius

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/internal/testtool"
)

// msVSA is a Microsoft (311) Vendor-Specific attribute holding one
// sub-attribute of type typ.
func msVSA(typ byte, value []byte) (rad.Type, rad.Attribute) {
	a := rad.Attribute{0, 0, 1, 55, typ, byte(2 + len(value))}
	return vendorSpecificType, append(a, value...)
}

// The attributes of each unsupported method, as a NAS sends them.
var (
	chapAttrs = []func(p *rad.Packet){
		func(p *rad.Packet) {
			p.Attributes.Add(chapPasswordType, append([]byte{7}, bytes.Repeat([]byte{0xab}, 16)...))
		},
		func(p *rad.Packet) { p.Attributes.Add(rfc2865.CHAPChallenge_Type, bytes.Repeat([]byte{0xcd}, 16)) },
	}
	// EAP-Response/Identity "alice", EAP Identifier 2.
	eapAttrs = []func(p *rad.Packet){
		func(p *rad.Packet) { p.Attributes.Add(eapMessageType, []byte{2, 2, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}) },
	}
	msCHAP2Attrs = []func(p *rad.Packet){
		func(p *rad.Packet) { p.Attributes.Add(msVSA(msCHAPChallengeType, bytes.Repeat([]byte{1}, 16))) },
		func(p *rad.Packet) { p.Attributes.Add(msVSA(msCHAP2ResponseType, bytes.Repeat([]byte{2}, 50))) },
	}
	msCHAP1Attrs = []func(p *rad.Packet){
		func(p *rad.Packet) { p.Attributes.Add(msVSA(msCHAPChallengeType, bytes.Repeat([]byte{1}, 8))) },
		func(p *rad.Packet) { p.Attributes.Add(msVSA(msCHAPResponseType, bytes.Repeat([]byte{2}, 50))) },
	}
)

// methodRequest is an Access-Request for alice with the given attributes
// and no User-Password, signed with a Message-Authenticator.
func methodRequest(t *testing.T, id byte, attrs []func(*rad.Packet)) []byte {
	t.Helper()
	p := rad.New(rad.CodeAccessRequest, []byte(testSecret))
	p.Identifier = id
	p.Attributes.Add(80, make([]byte, 16))
	rfc2865.UserName_SetString(p, "alice")
	for _, add := range attrs {
		add(p)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	signRaw(b, 22, testSecret)
	return b
}

func TestUnsupportedMethod(t *testing.T) {
	pap := func(p *rad.Packet) {
		if err := rfc2865.UserPassword_SetString(p, "pw123456"); err != nil {
			t.Fatal(err)
		}
	}
	otherVendor := func(p *rad.Packet) { p.Attributes.Add(vendorSpecificType, rad.Attribute{0, 0, 0x0c, 0x04, 1, 3, 'x'}) }
	truncatedVSA := func(p *rad.Packet) { p.Attributes.Add(vendorSpecificType, rad.Attribute{0, 0, 1, 55, 25, 200, 1}) }
	tests := []struct {
		name  string
		attrs []func(*rad.Packet)
		want  string
	}{
		{"PAP", []func(*rad.Packet){pap}, ""},
		{"no method", nil, ""},
		{"CHAP", chapAttrs, "CHAP"},
		{"EAP", eapAttrs, "EAP"},
		{"EAP with User-Password", append([]func(*rad.Packet){pap}, eapAttrs...), "EAP"},
		{"MS-CHAPv2", msCHAP2Attrs, "MS-CHAPv2"},
		{"MS-CHAP", msCHAP1Attrs, "MS-CHAP"},
		{"PAP with an MS-CHAP challenge", append([]func(*rad.Packet){pap}, msCHAP2Attrs[0]), ""},
		{"another vendor", []func(*rad.Packet){otherVendor}, ""},
		{"truncated Microsoft attribute", []func(*rad.Packet){truncatedVSA}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := rad.Parse(methodRequest(t, 1, tc.attrs), []byte(testSecret))
			if err != nil {
				t.Fatal(err)
			}
			if got := unsupportedMethod(p); got != tc.want {
				t.Fatalf("unsupportedMethod = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestUnsupportedMethodRejected: CHAP, MS-CHAP and EAP requests get a clean
// Access-Reject (an EAP one with EAP-Failure), audited as
// unsupported_method, not malformed; the Authenticator never sees them, and
// the admin gets one warning naming PAP, not one per request.
func TestUnsupportedMethodRejected(t *testing.T) {
	fa := &fakeAuth{}
	s := startServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	id := byte(0)
	for round := range 2 {
		for _, m := range []struct {
			name  string
			attrs []func(*rad.Packet)
		}{{"CHAP", chapAttrs}, {"EAP", eapAttrs}, {"MS-CHAPv2", msCHAP2Attrs}, {"MS-CHAP", msCHAP1Attrs}} {
			id++
			req := methodRequest(t, id, m.attrs)
			p := checkResponse(t, c.exchange(req), req, testSecret)
			if p.Code != rad.CodeAccessReject {
				t.Fatalf("%s (round %d): %v, want Access-Reject", m.name, round, p.Code)
			}
			eap, hasEAP := p.Attributes.Lookup(eapMessageType)
			if m.name == "EAP" {
				if !bytes.Equal(eap, []byte{4, 2, 0, 4}) {
					t.Fatalf("EAP: reject carries EAP-Message % x, want EAP-Failure for identifier 2 (04 02 00 04)", eap)
				}
			} else if hasEAP {
				t.Fatalf("%s: reject carries an EAP-Message", m.name)
			}
			if _, ok := p.Attributes.Lookup(rfc2865.ReplyMessage_Type); ok {
				t.Fatalf("%s: reject carries a Reply-Message", m.name)
			}
		}
	}
	if n := fa.calls.Load(); n != 0 {
		t.Fatalf("authenticator called %d times", n)
	}
	waitFor(t, "8 audit lines", func() bool { return strings.Count(s.audit.String(), "\n") == 8 })
	for _, line := range strings.Split(strings.TrimSpace(s.audit.String()), "\n") {
		var a struct{ User, Result, Reason string }
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatal(err)
		}
		if a.User != "alice" || a.Result != "reject" || a.Reason != "unsupported_method" {
			t.Fatalf("audit %s, want alice reject unsupported_method", line)
		}
	}
	if n := strings.Count(s.log.String(), "configure the NAS to send PAP (User-Password)"); n != 1 {
		t.Fatalf("%d warnings telling the admin to use PAP for 8 requests from one source, want 1:\n%s", n, s.log.String())
	}
	if !strings.Contains(s.log.String(), "method=CHAP") {
		t.Fatalf("the warning does not name the method:\n%s", s.log.String())
	}
}

// TestRadclientUnsupportedMethods: FreeRADIUS's radclient, a peer we did
// not write, sends CHAP and EAP; both get an Access-Reject it accepts as
// authentic, audited as unsupported_method.
func TestRadclientUnsupportedMethods(t *testing.T) {
	rc := testtool.Require(t, "radclient")
	fa := &fakeAuth{fn: byPassword}
	s := startServer(t, testOptions(), fa)
	const ma = ",Message-Authenticator=0x00"
	tests := []struct {
		name, attrs string
		want        []string
	}{
		{"CHAP", "User-Name=alice,CHAP-Password=accept" + ma, []string{"Received Access-Reject"}},
		{"EAP", "User-Name=alice,EAP-Message=0x0207000a01616c696365" + ma, []string{"Received Access-Reject", "EAP-Message = 0x04070004"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(s.audit.String(), `"reason":"unsupported_method"`)
			_, out := runRadclient(t, rc, s.addr.String(), testSecret, "auth", tc.attrs)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("radclient output lacks %q:\n%s", w, out)
				}
			}
			waitFor(t, "the audit line", func() bool {
				return strings.Count(s.audit.String(), `"reason":"unsupported_method"`) == before+1
			})
		})
	}
	if n := fa.calls.Load(); n != 0 {
		t.Fatalf("authenticator called %d times", n)
	}
}
