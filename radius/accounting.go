package radius

// Accounting (RFC 2866). VPN gateways such as OpenVPN's radiusplugin send
// Accounting-Request to their accounting server and give up on a session
// that gets no Accounting-Response, so otpgated answers them, on sockets of
// their own (radius.acct_listen), and records each one in the audit log.
//
// Accounting never touches the Authenticator, the store or the reply
// cache, and runs in its own read loops: a NAS's accounting traffic cannot
// change or delay an authentication decision.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// dropBadRequestAuth labels accounting requests whose Request
// Authenticator does not match the client's secret.
const dropBadRequestAuth = "bad_request_authenticator"

// accounting is the Server's accounting state, made on first use so that
// New needs nothing for it.
type accounting struct {
	once sync.Once
	// bad rate-limits the warning about requests with a wrong Request
	// Authenticator or Message-Authenticator (usually a secret mismatch).
	bad *unknownLimiter
}

func (s *Server) acctInit() {
	s.acct.once.Do(func() { s.acct.bad = newUnknownLimiter(s.now) })
}

// ServeAccounting is Serve for an accounting socket: every Accounting-Request
// from a known client with a valid Request Authenticator is written to the
// audit log and answered with an Accounting-Response; anything else is
// dropped. Shutdown stops it like Serve.
func (s *Server) ServeAccounting(ctx context.Context, pc net.PacketConn) error {
	s.acctInit()
	return s.serve(ctx, pc, s.receiveAccounting)
}

// receiveAccounting handles one datagram of an accounting socket in the read
// loop: the work is two MD5s and a log line.
func (s *Server) receiveAccounting(w packetWriter, _ netip.AddrPort, addr net.Addr, b []byte) {
	src := addrPortOf(addr)
	if !src.IsValid() {
		s.metrics.drops.inc(dropMalformed)
		return
	}
	c := s.set.Load().clients.lookup(src.Addr())
	if c == nil {
		s.metrics.drops.inc(dropUnknownClient)
		if ok, n := s.unknown.note(src.Addr()); ok {
			s.log.Warn("radius: dropped datagrams from an unknown client", "source", src.Addr().String(), "dropped", n)
		}
		return
	}
	pkt, err := rad.Parse(b, c.secret)
	if err != nil {
		s.metrics.drops.inc(dropMalformed)
		s.log.Debug("radius: dropped malformed accounting packet", "client", c.name, "source", src.String(), "err", err)
		return
	}
	if pkt.Code != rad.CodeAccountingRequest {
		s.metrics.drops.inc(dropUnsupportedCode)
		s.log.Debug("radius: dropped a packet other than Accounting-Request on an accounting socket", "client", c.name, "code", pkt.Code.String())
		return
	}
	raw := b[:binary.BigEndian.Uint16(b[2:4])]
	if !validAccountingRequest(raw, c.secret) {
		s.metrics.drops.inc(dropBadRequestAuth)
		if ok, n := s.acct.bad.note(src.Addr()); ok {
			s.log.Warn("radius: dropped Accounting-Requests with an invalid Request Authenticator; is the shared secret the same on the NAS?",
				"client", c.name, "source", src.Addr().String(), "dropped", n)
		}
		return
	}
	// A Message-Authenticator is optional here (the Request Authenticator
	// already covers the packet), but one that is present must be valid.
	ma := checkAccountingMA(raw, c.macs)
	if ma == maInvalid {
		s.metrics.drops.inc(dropBadMA)
		if ok, n := s.acct.bad.note(src.Addr()); ok {
			s.log.Warn("radius: dropped Accounting-Requests with an invalid Message-Authenticator; is the shared secret the same on the NAS?",
				"client", c.name, "source", src.Addr().String(), "dropped", n)
		}
		return
	}
	ev, ok := parseAccounting(pkt)
	if !ok {
		s.metrics.drops.inc(dropMalformed)
		s.log.Debug("radius: dropped Accounting-Request without exactly one Acct-Status-Type", "client", c.name, "source", src.String())
		return
	}
	resp, err := accountingResponse(pkt, c.macs, ma == maValid)
	if err != nil {
		s.metrics.drops.inc(dropInternal)
		s.log.Error("radius: build accounting response; request dropped", "client", c.name, "err", err)
		return
	}
	s.auditAccounting(c.name, src, ev)
	s.metrics.requests.inc("accounting")
	if _, err := w.WriteTo(resp, addr); err != nil {
		s.log.Debug("radius: write accounting reply", "client", c.name, "err", err)
	}
}

// validAccountingRequest checks the Request Authenticator of an
// Accounting-Request as received (raw is exactly Length octets): MD5(Code,
// Identifier, Length, 16 zero octets, Attributes, secret), RFC 2866 §3,
// compared in constant time.
func validAccountingRequest(raw, secret []byte) bool {
	if len(raw) < 20 || len(secret) == 0 {
		return false
	}
	var zero [md5.Size]byte
	h := md5.New()
	h.Write(raw[:4])
	h.Write(zero[:])
	h.Write(raw[20:])
	h.Write(secret)
	return subtle.ConstantTimeCompare(h.Sum(nil), raw[4:20]) == 1
}

// checkAccountingMA verifies a Message-Authenticator in an
// Accounting-Request. The NAS computes it before the Request Authenticator,
// over the packet with those 16 octets zero (as FreeRADIUS does, and RFC
// 5176 §3.4 for CoA), so it is checked over such a copy.
func checkAccountingMA(raw []byte, m *macs) maStatus {
	cp := bytes.Clone(raw)
	clear(cp[4:20])
	return checkMessageAuthenticator(cp, m)
}

// acctEvent is what the audit log keeps of one Accounting-Request.
type acctEvent struct {
	status                    rfc2866.AcctStatusType
	user, station, session    string
	nasIP, nasID              string
	framedIP                  string
	terminateCause            string
	sessionTime, delay        uint32
	inputOctets, outputOctets uint64
}

// parseAccounting reads the audited attributes. ok is false without exactly
// one Acct-Status-Type, the one attribute RFC 2866 requires.
func parseAccounting(p *rad.Packet) (ev acctEvent, ok bool) {
	st, err := rfc2866.AcctStatusType_Gets(p)
	if err != nil || len(st) != 1 {
		return ev, false
	}
	ev.status = st[0]
	ev.user = rfc2865.UserName_GetString(p)
	ev.station = rfc2865.CallingStationID_GetString(p)
	ev.session = rfc2866.AcctSessionID_GetString(p)
	ev.nasID = rfc2865.NASIdentifier_GetString(p)
	if ip, err := rfc2865.NASIPAddress_Lookup(p); err == nil {
		ev.nasIP = ip.String()
	}
	if ip, err := rfc2865.FramedIPAddress_Lookup(p); err == nil {
		ev.framedIP = ip.String()
	}
	if tc, err := rfc2866.AcctTerminateCause_Lookup(p); err == nil {
		ev.terminateCause = tc.String()
	}
	ev.sessionTime = uint32(rfc2866.AcctSessionTime_Get(p))
	ev.delay = uint32(rfc2866.AcctDelayTime_Get(p))
	// Gigawords count the 2^32 wraps of the octet counters (RFC 2869 §5.1).
	ev.inputOctets = uint64(rfc2869.AcctInputGigawords_Get(p))<<32 | uint64(rfc2866.AcctInputOctets_Get(p))
	ev.outputOctets = uint64(rfc2869.AcctOutputGigawords_Get(p))<<32 | uint64(rfc2866.AcctOutputOctets_Get(p))
	return ev, true
}

// accountingResponse encodes the Accounting-Response to req: every
// Proxy-State copied back in order, and the Response Authenticator
// MD5(Code, Identifier, Length, Request Authenticator, Attributes, secret)
// (RFC 2866 §3). withMA adds a Message-Authenticator first, for a NAS that
// signed its request; like the request's, it is computed with 16 zero
// octets in place of the authenticator, which is what FreeRADIUS's clients
// verify.
func accountingResponse(req *rad.Packet, m *macs, withMA bool) ([]byte, error) {
	resp := req.Response(rad.CodeAccountingResponse)
	resp.Secret = m.secret
	for _, avp := range req.Attributes {
		if avp.Type == proxyStateType {
			resp.Attributes.Add(proxyStateType, append(rad.Attribute(nil), avp.Attribute...))
		}
	}
	if !withMA {
		return resp.Encode()
	}
	resp.Authenticator = [16]byte{}
	b, err := encodeSigned(resp, m)
	if err != nil {
		return nil, err
	}
	h := md5.New()
	h.Write(b[:4])
	h.Write(req.Authenticator[:])
	h.Write(b[20:])
	h.Write(m.secret)
	h.Sum(b[4:4])
	return b, nil
}

// auditAccounting writes one line per Accounting-Request. It holds what
// the NAS reported about the session, never a secret.
func (s *Server) auditAccounting(client string, src netip.AddrPort, ev acctEvent) {
	attrs := []slog.Attr{
		slog.String("status", ev.status.String()),
		slog.String("user", ev.user),
		slog.String("client", client),
		slog.String("source", src.Addr().String()),
		slog.String("station", ev.station),
		slog.String("session_id", ev.session),
	}
	if ev.nasIP != "" {
		attrs = append(attrs, slog.String("nas_ip", ev.nasIP))
	}
	if ev.nasID != "" {
		attrs = append(attrs, slog.String("nas_id", ev.nasID))
	}
	if ev.framedIP != "" {
		attrs = append(attrs, slog.String("framed_ip", ev.framedIP))
	}
	switch ev.status {
	case rfc2866.AcctStatusType_Value_Stop, rfc2866.AcctStatusType_Value_InterimUpdate:
		attrs = append(attrs,
			slog.Uint64("session_time_s", uint64(ev.sessionTime)),
			slog.Uint64("input_octets", ev.inputOctets),
			slog.Uint64("output_octets", ev.outputOctets))
	}
	if ev.terminateCause != "" {
		attrs = append(attrs, slog.String("terminate_cause", ev.terminateCause))
	}
	if ev.delay != 0 {
		attrs = append(attrs, slog.Uint64("delay_s", uint64(ev.delay)))
	}
	s.audit.LogAttrs(context.Background(), slog.LevelInfo, "radius accounting", attrs...)
}
