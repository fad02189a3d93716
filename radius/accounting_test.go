package radius

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/json"
	"net"
	"strings"
	"testing"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// startAcctServer runs ServeAccounting on 127.0.0.1:0 until the test ends.
func startAcctServer(t *testing.T, opt Options, a Authenticator) *testServer {
	t.Helper()
	return startServing(t, "127.0.0.1:0", opt, a, (*Server).ServeAccounting)
}

// acctOpts shapes a test Accounting-Request.
type acctOpts struct {
	code        rad.Code // default Accounting-Request
	id          byte
	status      rfc2866.AcctStatusType // 0: no Acct-Status-Type
	twoStatus   bool
	user        string
	session     string
	proxyStates [][]byte
	withMA      bool
	badMA       bool
	secret      string // default testSecret
	breakAuth   bool   // flip a bit of the Request Authenticator
	gigawords   bool
}

// makeAcct encodes an Accounting-Request the way a NAS does, with code of
// its own: the Message-Authenticator over the packet with a zero Request
// Authenticator, then the Request Authenticator (RFC 2866 §3).
func makeAcct(t testing.TB, o acctOpts) []byte {
	t.Helper()
	secret := []byte(testSecret)
	if o.secret != "" {
		secret = []byte(o.secret)
	}
	code := o.code
	if code == 0 {
		code = rad.CodeAccountingRequest
	}
	p := rad.New(code, secret)
	p.Identifier = o.id
	p.Authenticator = [16]byte{}
	if o.withMA {
		p.Attributes.Add(80, make([]byte, 16))
	}
	if o.status != 0 {
		rfc2866.AcctStatusType_Add(p, o.status)
		if o.twoStatus {
			rfc2866.AcctStatusType_Add(p, o.status)
		}
	}
	if o.user != "" {
		rfc2865.UserName_SetString(p, o.user)
	}
	if o.session != "" {
		rfc2866.AcctSessionID_SetString(p, o.session)
	}
	rfc2865.NASIdentifier_SetString(p, "openvpn-gw")
	rfc2865.NASIPAddress_Set(p, net.IPv4(192, 0, 2, 1))
	rfc2865.CallingStationID_SetString(p, "198.51.100.7")
	rfc2865.FramedIPAddress_Set(p, net.IPv4(10, 8, 0, 6))
	rfc2866.AcctSessionTime_Set(p, 3600)
	rfc2866.AcctInputOctets_Set(p, 1000)
	rfc2866.AcctOutputOctets_Set(p, 2000)
	if o.gigawords {
		rfc2869.AcctInputGigawords_Set(p, 2)
		rfc2869.AcctOutputGigawords_Set(p, 1)
	}
	if o.status == rfc2866.AcctStatusType_Value_Stop {
		rfc2866.AcctTerminateCause_Set(p, rfc2866.AcctTerminateCause_Value_UserRequest)
	}
	for _, ps := range o.proxyStates {
		p.Attributes.Add(rfc2865.ProxyState_Type, ps)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if o.withMA {
		m := hmac.New(md5.New, secret)
		m.Write(b) // authenticator and MA value are zero here
		copy(b[22:38], m.Sum(nil))
		if o.badMA {
			b[22] ^= 1
		}
	}
	h := md5.New()
	h.Write(b)
	h.Write(secret)
	copy(b[4:20], h.Sum(nil))
	if o.breakAuth {
		b[4] ^= 1
	}
	return b
}

// checkAcctResponse verifies an Accounting-Response independently of the
// server's code: code, Identifier, Response Authenticator and, when the
// request had one, a valid Message-Authenticator first.
func checkAcctResponse(t testing.TB, resp, req []byte, withMA bool) *rad.Packet {
	t.Helper()
	if rad.Code(resp[0]) != rad.CodeAccountingResponse {
		t.Fatalf("response code %d, want Accounting-Response", resp[0])
	}
	if withMA {
		if len(resp) < 38 || resp[20] != 80 || resp[21] != 18 {
			t.Fatalf("Message-Authenticator is not the first attribute: % x", resp[20:min(len(resp), 24)])
		}
		cp := bytes.Clone(resp)
		clear(cp[4:20])
		clear(cp[22:38])
		m := hmac.New(md5.New, []byte(testSecret))
		m.Write(cp)
		if !hmac.Equal(m.Sum(nil), resp[22:38]) {
			t.Fatal("response Message-Authenticator invalid")
		}
	}
	if !rad.IsAuthenticResponse(resp, req, []byte(testSecret)) {
		t.Fatal("response authenticator invalid")
	}
	if resp[1] != req[1] {
		t.Fatalf("response id %d, want %d", resp[1], req[1])
	}
	p, err := rad.Parse(resp, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Attributes.Lookup(80); ok != withMA {
		t.Fatalf("Message-Authenticator in the answer: %v, want %v", ok, withMA)
	}
	return p
}

// lastAudit decodes the last audit line.
func lastAudit(t *testing.T, s *testServer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(s.audit.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("audit line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

func TestAccountingAnswered(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	s := startAcctServer(t, testOptions(), fa)
	c := newClient(t, s.addr)
	tests := []struct {
		name   string
		o      acctOpts
		audit  map[string]any // expected fields of the audit line
		absent []string       // fields the audit line must not have
	}{
		{"start", acctOpts{status: rfc2866.AcctStatusType_Value_Start, user: "alice", session: "S1"},
			map[string]any{"status": "Start", "user": "alice", "session_id": "S1", "client": "nas", "station": "198.51.100.7",
				"nas_ip": "192.0.2.1", "nas_id": "openvpn-gw", "framed_ip": "10.8.0.6"},
			[]string{"input_octets", "session_time_s"}},
		{"interim", acctOpts{status: rfc2866.AcctStatusType_Value_InterimUpdate, user: "alice", session: "S1"},
			map[string]any{"status": "Interim-Update", "session_time_s": 3600.0, "input_octets": 1000.0, "output_octets": 2000.0}, nil},
		{"stop with gigawords", acctOpts{status: rfc2866.AcctStatusType_Value_Stop, user: "alice", session: "S1", gigawords: true},
			map[string]any{"status": "Stop", "session_time_s": 3600.0, "input_octets": float64(2<<32 + 1000), "output_octets": float64(1<<32 + 2000),
				"terminate_cause": "User-Request"}, nil},
		{"accounting-on", acctOpts{status: rfc2866.AcctStatusType_Value_AccountingOn},
			map[string]any{"status": "Accounting-On", "user": ""}, nil},
		{"accounting-off", acctOpts{status: rfc2866.AcctStatusType_Value_AccountingOff},
			map[string]any{"status": "Accounting-Off"}, nil},
		{"with Message-Authenticator", acctOpts{status: rfc2866.AcctStatusType_Value_Start, user: "bob", withMA: true},
			map[string]any{"status": "Start", "user": "bob"}, nil},
		{"proxy-state copied", acctOpts{status: rfc2866.AcctStatusType_Value_Start, user: "carol", proxyStates: [][]byte{[]byte("abc"), []byte("def")}},
			map[string]any{"user": "carol"}, nil},
		{"proxy-state copied with Message-Authenticator", acctOpts{status: rfc2866.AcctStatusType_Value_Stop, user: "dave", withMA: true, proxyStates: [][]byte{[]byte("p1")}},
			map[string]any{"user": "dave"}, nil},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.id = byte(i)
			req := makeAcct(t, tc.o)
			p := checkAcctResponse(t, c.exchange(req), req, tc.o.withMA)
			var got [][]byte
			for _, a := range p.Attributes {
				if a.Type == proxyStateType {
					got = append(got, a.Attribute)
				}
			}
			if len(got) != len(tc.o.proxyStates) {
				t.Fatalf("%d Proxy-States in the answer, want %d", len(got), len(tc.o.proxyStates))
			}
			for j := range got {
				if !bytes.Equal(got[j], tc.o.proxyStates[j]) {
					t.Errorf("Proxy-State %d = %q, want %q (in order)", j, got[j], tc.o.proxyStates[j])
				}
			}
			a := lastAudit(t, s)
			if a["msg"] != "radius accounting" {
				t.Fatalf("audit line %v", a)
			}
			for k, v := range tc.audit {
				if a[k] != v {
					t.Errorf("audit %s = %v, want %v (line %v)", k, a[k], v, a)
				}
			}
			for _, k := range tc.absent {
				if _, ok := a[k]; ok {
					t.Errorf("audit has %s on a %s: %v", k, tc.name, a)
				}
			}
		})
	}
	if n := fa.calls.Load(); n != 0 {
		t.Errorf("accounting called the Authenticator %d times", n)
	}
	if n := valueOf(s.metrics.requests, "accounting"); n != uint64(len(tests)) {
		t.Errorf("otpgate_radius_requests_total{code=accounting} = %d, want %d", n, len(tests))
	}
	if strings.Contains(s.audit.String()+s.log.String(), testSecret) {
		t.Error("the shared secret is in a log")
	}
}

func TestAccountingDropped(t *testing.T) {
	opt := testOptions()
	other := testNAS("other", "127.0.0.2", true, true)
	other.Secret = "another-secret-0123456789abcdef"
	opt.Clients = append(opt.Clients, other)
	fa := &fakeAuth{fn: byPassword}
	s := startAcctServer(t, opt, fa)
	start := rfc2866.AcctStatusType_Value_Start
	tests := []struct {
		name   string
		from   string // default 127.0.0.1
		b      []byte
		reason string
	}{
		{"bad request authenticator", "", makeAcct(t, acctOpts{status: start, user: "alice", breakAuth: true}), dropBadRequestAuth},
		{"wrong secret", "", makeAcct(t, acctOpts{status: start, user: "alice", secret: "not-the-shared-secret-at-all"}), dropBadRequestAuth},
		{"another client's secret", "127.0.0.2", makeAcct(t, acctOpts{status: start, user: "alice"}), dropBadRequestAuth},
		{"bad Message-Authenticator", "", makeAcct(t, acctOpts{status: start, user: "alice", withMA: true, badMA: true}), dropBadMA},
		{"no Acct-Status-Type", "", makeAcct(t, acctOpts{user: "alice"}), dropMalformed},
		{"two Acct-Status-Types", "", makeAcct(t, acctOpts{status: start, twoStatus: true, user: "alice"}), dropMalformed},
		{"Access-Request", "", makeRequest(t, reqOpts{user: "alice", password: "accept"}), dropUnsupportedCode},
		{"truncated", "", makeAcct(t, acctOpts{status: start})[:19], dropMalformed},
		{"unknown client", "127.0.0.4", makeAcct(t, acctOpts{status: start, user: "alice"}), dropUnknownClient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *testClient
			if tc.from == "" {
				c = newClient(t, s.addr)
			} else {
				c = newClientFrom(t, tc.from, s.addr)
			}
			expectDrop(t, s, c, tc.b, tc.reason)
		})
	}
	if s.audit.String() != "" {
		t.Errorf("a dropped request was audited:\n%s", s.audit.String())
	}
	if n := fa.calls.Load(); n != 0 {
		t.Errorf("accounting called the Authenticator %d times", n)
	}
	log := s.log.String()
	if !strings.Contains(log, "invalid Request Authenticator; is the shared secret the same on the NAS?") {
		t.Errorf("no warning about the Request Authenticator:\n%s", log)
	}
	if !strings.Contains(log, "unknown client") {
		t.Errorf("no warning about the unknown client:\n%s", log)
	}
	if strings.Contains(log, testSecret) {
		t.Error("the shared secret is in the log")
	}
}

// TestAccountingSocketsApart: the authentication socket still drops
// Accounting-Request, and the accounting socket never authenticates.
func TestAccountingSocketsApart(t *testing.T) {
	fa := &fakeAuth{fn: byPassword}
	auth := startServer(t, testOptions(), fa)
	expectDrop(t, auth, newClient(t, auth.addr),
		makeAcct(t, acctOpts{status: rfc2866.AcctStatusType_Value_Start, user: "alice"}), dropUnsupportedCode)
	acct := startAcctServer(t, testOptions(), fa)
	expectDrop(t, acct, newClient(t, acct.addr), makeRequest(t, reqOpts{user: "alice", password: "accept"}), dropUnsupportedCode)
	if n := fa.calls.Load(); n != 0 {
		t.Errorf("the Authenticator was called %d times", n)
	}
}

func TestValidAccountingRequest(t *testing.T) {
	good := makeAcct(t, acctOpts{status: rfc2866.AcctStatusType_Value_Start, user: "alice"})
	// layeh's own check agrees with ours on a good packet.
	if !rad.IsAuthenticRequest(good, []byte(testSecret)) || !validAccountingRequest(good, []byte(testSecret)) {
		t.Fatal("a good request is not authentic")
	}
	for name, b := range map[string][]byte{
		"short":        good[:19],
		"attr changed": append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1),
	} {
		if validAccountingRequest(b, []byte(testSecret)) {
			t.Errorf("%s: accepted", name)
		}
	}
	if validAccountingRequest(good, nil) {
		t.Error("accepted with an empty secret")
	}
}
