package radius

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
)

func TestClientTable(t *testing.T) {
	nas := func(name, addr, secret string, mode auth.Mode) Client {
		return Client{Name: name, Address: addr, Secret: secret, Mode: mode,
			RequireMessageAuthenticator: true, LimitProxyState: true}
	}
	clients := []Client{
		nas("wide", "10.0.0.0/8", "s1", auth.ModeAppend),
		nas("narrow", "10.1.0.0/16", "s2", auth.ModeChallenge),
		nas("host", "10.1.2.3", "s3", auth.ModeAppend),
		nas("v6net", "2001:db8::/32", "s4", auth.ModeOTPOnly),
		nas("v6host", "2001:db8::1", "s5", auth.ModeAppend),
		nas("mapped", "::ffff:192.0.2.0/120", "s6", auth.ModeAppend),
		nas("all-v4", "0.0.0.0/0", "s7", auth.ModeAppend),
	}
	tab, err := newClientTable(clients, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr, want string
		mode       auth.Mode
	}{
		{"10.9.9.9", "wide", auth.ModeAppend},
		{"10.1.9.9", "narrow", auth.ModeChallenge},
		{"10.1.2.3", "host", auth.ModeAppend},
		{"::ffff:10.1.2.3", "host", auth.ModeAppend},
		{"2001:db8::2", "v6net", auth.ModeOTPOnly},
		{"2001:db8::1", "v6host", auth.ModeAppend},
		{"2001:db8::1%eth0", "v6host", auth.ModeAppend},
		{"192.0.2.77", "mapped", auth.ModeAppend},
		{"203.0.113.1", "all-v4", auth.ModeAppend},
		{"2001:db9::1", "", ""},
		{"::1", "", ""},
	}
	for _, tc := range tests {
		c := tab.lookup(netip.MustParseAddr(tc.addr))
		got := ""
		if c != nil {
			got = c.name
		}
		if got != tc.want {
			t.Errorf("lookup(%s) = %q, want %q", tc.addr, got, tc.want)
			continue
		}
		if c != nil && c.mode != tc.mode {
			t.Errorf("lookup(%s).mode = %q, want %q", tc.addr, c.mode, tc.mode)
		}
	}
	if c := tab.lookup(netip.MustParseAddr("10.1.2.3")); !c.requireMA || !c.limitProxyState {
		t.Error("RequireMessageAuthenticator and LimitProxyState not kept")
	}
}

func TestClientTableNameAndErrors(t *testing.T) {
	tab, err := newClientTable([]Client{{Address: "127.0.0.1", Secret: "x", Mode: auth.ModeAuto,
		RequireMessageAuthenticator: false, LimitProxyState: false}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := tab.lookup(netip.MustParseAddr("127.0.0.1"))
	if c.name != "127.0.0.1" || c.mode != auth.ModeAuto || c.requireMA || c.limitProxyState {
		t.Fatalf("got %+v", c)
	}

	tests := []struct {
		name    string
		clients []Client
		wantErr string
	}{
		{"bad address", []Client{{Name: "a", Address: "10.0.0.300", Secret: "x", Mode: auth.ModeAuto}}, `client[0] "a": address`},
		{"bad cidr", []Client{{Name: "a", Address: "10.0.0.0/33", Secret: "x", Mode: auth.ModeAuto}}, "address"},
		{"empty secret", []Client{{Name: "a", Address: "10.0.0.1", Mode: auth.ModeAuto}}, "empty shared secret"},
		{"duplicate prefix", []Client{{Name: "a", Address: "10.0.0.0/8", Secret: "x", Mode: auth.ModeAuto}, {Name: "b", Address: "10.1.2.3/8", Secret: "y", Mode: auth.ModeAuto}}, `also used by client "a"`},
		{"bad mode", []Client{{Name: "a", Address: "10.0.0.1", Secret: "x", Mode: "sms"}}, "unknown mode"},
		{"empty mode", []Client{{Name: "a", Address: "10.0.0.1", Secret: "x"}}, "mode is empty"}, // the config fills it in
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClientTable(tc.clients, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret\"") {
				t.Fatal("error mentions a secret")
			}
		})
	}
}

func TestUnknownLimiter(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	u := newUnknownLimiter(clk.now)
	a := netip.MustParseAddr("192.0.2.1")
	if ok, n := u.note(a); !ok || n != 1 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for range 5 {
		clk.advance(time.Second)
		if ok, _ := u.note(a); ok {
			t.Fatal("logged twice within a minute")
		}
	}
	clk.advance(time.Minute)
	if ok, n := u.note(a); !ok || n != 6 {
		t.Fatalf("after a minute: %v %d, want true 6", ok, n)
	}
	if ok, _ := u.note(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Fatal("another source is limited separately")
	}
	u.max = 8
	for i := range 100 {
		u.note(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		if len(u.m) > 8 {
			t.Fatalf("%d sources tracked, bound 8", len(u.m))
		}
	}
}
