package config

import (
	"net"
	"net/netip"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestSampleLoopbackListenersHaveClients: the sample listens on loopback
// addresses only where a client could use them: a request to a loopback
// address comes from a loopback address of the same family, so some
// [[client]] must cover it (the sample once listened on [::1] with no
// IPv6 client, and failed to start where IPv6 is off).
func TestSampleLoopbackListenersHaveClients(t *testing.T) {
	c, err := Load(testtool.SampleConfig(t, "../../radiusd.toml", 0o600))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range c.Radius.Listen {
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			t.Fatalf("radius.listen %q: %v", l, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.IsLoopback() {
			continue
		}
		covered := false
		for _, cl := range c.Clients {
			if p, err := cl.Prefix(); err == nil && p.Contains(ip) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("radius.listen %q: no [[client]] covers %s, so nothing can use this listener", l, ip)
		}
	}
}
