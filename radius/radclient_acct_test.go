package radius

import (
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestRadclientAccounting checks ServeAccounting with FreeRADIUS's radclient,
// which signs the Accounting-Request its own way and verifies the Response
// Authenticator (and a Message-Authenticator, when it sent one) of the reply.
func TestRadclientAccounting(t *testing.T) {
	rc := testtool.Require(t, "radclient")
	fa := &fakeAuth{fn: byPassword}
	s := startAcctServer(t, testOptions(), fa)
	addr := s.addr.String()
	const session = ",Acct-Session-Id=ovpn-1,Calling-Station-Id=198.51.100.7,Framed-IP-Address=10.8.0.6"
	tests := []struct {
		name, secret, attrs string
		want, notWant       []string
		audit               string // in the audit log afterwards
	}{
		{name: "start", attrs: "User-Name=alice,Acct-Status-Type=Start" + session,
			want: []string{"Received Accounting-Response"}, audit: `"status":"Start","user":"alice"`},
		{name: "interim with Proxy-State", attrs: "User-Name=alice,Acct-Status-Type=Interim-Update,Acct-Session-Time=60,Acct-Input-Octets=5,Acct-Output-Octets=7,Proxy-State=0x616263" + session,
			want: []string{"Received Accounting-Response", "Proxy-State = 0x616263"}, audit: `"session_time_s":60,"input_octets":5,"output_octets":7`},
		{name: "stop with gigawords and Message-Authenticator", attrs: "User-Name=alice,Acct-Status-Type=Stop,Acct-Session-Time=7200,Acct-Input-Octets=1,Acct-Input-Gigawords=1,Acct-Output-Octets=2,Acct-Terminate-Cause=User-Request,Message-Authenticator=0x00" + session,
			want: []string{"Received Accounting-Response"}, audit: `"input_octets":4294967297,"output_octets":2`},
		{name: "accounting-on", attrs: "Acct-Status-Type=Accounting-On,NAS-Identifier=gw1",
			want: []string{"Received Accounting-Response"}, audit: `"status":"Accounting-On"`},
		{name: "accounting-off", attrs: "Acct-Status-Type=Accounting-Off,NAS-Identifier=gw1",
			want: []string{"Received Accounting-Response"}, audit: `"status":"Accounting-Off"`},
		{name: "wrong secret", secret: "not-the-shared-secret", attrs: "User-Name=mallory,Acct-Status-Type=Start",
			want: []string{"No reply"}, notWant: []string{"Received"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := tc.secret
			if secret == "" {
				secret = testSecret
			}
			_, out := runRadclient(t, rc, addr, secret, "acct", tc.attrs)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("radclient output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("radclient output has %q:\n%s", w, out)
				}
			}
			if tc.audit != "" && !strings.Contains(s.audit.String(), tc.audit) {
				t.Errorf("audit log lacks %s:\n%s", tc.audit, s.audit.String())
			}
		})
	}
	if strings.Contains(s.audit.String(), "mallory") {
		t.Error("a request with the wrong secret was audited")
	}
	if n := fa.calls.Load(); n != 0 {
		t.Errorf("accounting called the Authenticator %d times", n)
	}
}
