package radius

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/otpgate/otpgate/auth"
)

// client is a Client after validation.
type client struct {
	name            string
	prefix          netip.Prefix
	secret          []byte
	macs            *macs // HMAC-MD5 with secret
	requireMA       bool
	limitProxyState bool
	mode            auth.Mode

	// queued counts this client's requests waiting for a handler
	// (Server.queue), bounded by Server.queueShare.
	queued atomic.Int64
}

// clientTable maps a source address to a client. Entries are sorted by prefix
// length, longest first, so the first match is the longest prefix. Two
// different prefixes of the same length never both contain one address, so
// the result is deterministic.
type clientTable struct {
	entries []*client
}

// checkMode refuses a mode the Authenticator does not know, and an empty one:
// the config fills every client's mode in.
func checkMode(m auth.Mode) error {
	switch m {
	case auth.ModeAppend, auth.ModeChallenge, auth.ModeOTPOnly, auth.ModeAuto:
		return nil
	case "":
		return errors.New("mode is empty (want append, challenge, otp-only or auto)")
	default:
		return fmt.Errorf("unknown mode %q (want append, challenge, otp-only or auto)", string(m))
	}
}

// parseClientAddress accepts a CIDR or a bare IP (a /32 or /128). IPv4-mapped
// IPv6 prefixes are turned into IPv4 ones and zones are dropped, so lookups
// match however the kernel reports the source.
func parseClientAddress(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		a = a.WithZone("")
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// newClientTable validates the clients; log (nil: none) gets the warnings
// about weak settings.
func newClientTable(clients []Client, log *slog.Logger) (*clientTable, error) {
	t := &clientTable{}
	seen := make(map[netip.Prefix]string)
	for i, cc := range clients {
		name := cc.Name
		if name == "" {
			name = cc.Address
		}
		p, err := parseClientAddress(cc.Address)
		if err != nil {
			return nil, fmt.Errorf("radius: client[%d] %q: address %q: %w", i, name, cc.Address, err)
		}
		if other, dup := seen[p]; dup {
			return nil, fmt.Errorf("radius: client[%d] %q: address %s is also used by client %q", i, name, p, other)
		}
		seen[p] = name
		if cc.Secret == "" {
			return nil, fmt.Errorf("radius: client[%d] %q: empty shared secret", i, name)
		}
		if len(cc.Secret) <= 12 && log != nil {
			log.Warn("radius: shared secret is insecure (12 octets or less); use 24+ random octets", "client", name)
		}
		if err := checkMode(cc.Mode); err != nil {
			return nil, fmt.Errorf("radius: client[%d] %q: %w", i, name, err)
		}
		secret := []byte(cc.Secret)
		c := &client{
			name:            name,
			prefix:          p,
			secret:          secret,
			macs:            newMACs(secret), // the same key, not a second copy
			requireMA:       cc.RequireMessageAuthenticator,
			limitProxyState: cc.LimitProxyState,
			mode:            cc.Mode,
		}
		if !c.requireMA && !c.limitProxyState && log != nil {
			log.Warn("radius: client has require_message_authenticator and limit_proxy_state both off; forged Access-Accepts are possible (BlastRADIUS)", "client", name)
		}
		t.entries = append(t.entries, c)
	}
	slices.SortStableFunc(t.entries, func(a, b *client) int {
		if c := cmp.Compare(b.prefix.Bits(), a.prefix.Bits()); c != 0 {
			return c
		}
		return a.prefix.Addr().Compare(b.prefix.Addr())
	})
	return t, nil
}

// lookup returns the client whose prefix contains a, longest prefix first, or
// nil for an unknown source.
func (t *clientTable) lookup(a netip.Addr) *client {
	a = a.Unmap().WithZone("")
	for _, c := range t.entries {
		if c.prefix.Contains(a) {
			return c
		}
	}
	return nil
}
