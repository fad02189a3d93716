package radius

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unicode/utf8"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/otpgate/otpgate/auth"
)

const (
	maxAttrLen = 253
	// defaultPrompt is the challenge prompt when the Authenticator gives none;
	// pam_radius needs a non-empty Reply-Message in every Access-Challenge.
	defaultPrompt = "Enter your verification code: "
	maxUserLen    = 253
)

// reasonUnsupportedMethod rejects a request that uses CHAP, MS-CHAP or EAP.
// The transport decides it (the Authenticator never sees such a request),
// so it lives here; it is an auth.Reason for the audit log and metrics.
const reasonUnsupportedMethod auth.Reason = "unsupported_method"

// Attributes of the methods otpgated cannot check.
const (
	chapPasswordType    = rfc2865.CHAPPassword_Type // 3
	eapMessageType      = rad.Type(79)              // RFC 3579
	vendorSpecificType  = rfc2865.VendorSpecific_Type
	vendorMicrosoft     = 311 // RFC 2548: MS-CHAP in Vendor-Specific
	msCHAPResponseType  = 1
	msCHAPChallengeType = 11
	msCHAP2ResponseType = 25
)

// unsupportedMethod names the authentication method of a request that
// otpgated cannot check, or returns "" for PAP (or no method at all, which
// buildRequest rejects as malformed). With EAP, CHAP or MS-CHAP the password
// and code never reach the server in the clear, so there is nothing to
// verify them against an argon2id hash and a TOTP seed.
func unsupportedMethod(p *rad.Packet) string {
	if _, ok := p.Attributes.Lookup(eapMessageType); ok {
		return "EAP" // RFC 3579: never together with User-Password
	}
	if _, ok := p.Attributes.Lookup(rfc2865.UserPassword_Type); ok {
		return ""
	}
	if _, ok := p.Attributes.Lookup(chapPasswordType); ok {
		return "CHAP"
	}
	method := ""
	for _, a := range p.Attributes {
		if a.Type != vendorSpecificType || len(a.Attribute) < 6 ||
			binary.BigEndian.Uint32(a.Attribute[:4]) != vendorMicrosoft {
			continue
		}
		for sub := a.Attribute[4:]; len(sub) >= 2 && int(sub[1]) >= 2 && int(sub[1]) <= len(sub); sub = sub[sub[1]:] {
			switch sub[0] {
			case msCHAP2ResponseType:
				return "MS-CHAPv2"
			case msCHAPResponseType, msCHAPChallengeType:
				method = "MS-CHAP"
			}
		}
	}
	return method
}

// eapFailure is the EAP-Failure that answers the EAP-Response in req (RFC
// 2869, RFC 3579: an Access-Reject to an EAP request carries one, so the NAS
// ends the EAP conversation at once), or nil when req has no EAP-Message.
func eapFailure(req *rad.Packet) rad.Attribute {
	msg, ok := req.Attributes.Lookup(eapMessageType)
	if !ok {
		return nil
	}
	var id byte
	if len(msg) >= 2 {
		id = msg[1]
	}
	return rad.Attribute{4, id, 0, 4} // Code Failure, Identifier, Length 4
}

// buildRequest turns a verified Access-Request into an auth.Request. ok is
// false when the packet lacks a usable User-Name or User-Password, or has
// more than one State: the caller answers such a request with a Reject.
func buildRequest(p *rad.Packet, c *client, src netip.AddrPort) (req auth.Request, ok bool) {
	req = auth.Request{Client: c.name, Mode: c.mode}
	if st, err := rfc2865.CallingStationID_LookupString(p); err == nil && st != "" {
		req.Station = st
	} else {
		req.Station = src.Addr().String()
	}
	user, err := rfc2865.UserName_LookupString(p)
	if err != nil || user == "" || len(user) > maxUserLen {
		return req, false
	}
	req.User = user
	pw, err := rfc2865.UserPassword_LookupString(p)
	if err != nil {
		return req, false
	}
	req.Password = pw
	states, err := rfc2865.State_Gets(p)
	if err != nil || len(states) > 1 {
		return req, false
	}
	if len(states) == 1 {
		if len(states[0]) == 0 {
			return req, false
		}
		req.State = states[0]
	}
	return req, true
}

// buildResponse encodes the answer to req for decision d, signed with the
// client's HMAC pool m. A Challenge
// without a usable State becomes a Reject (internal_error); the decision
// actually sent is returned.
func buildResponse(req *rad.Packet, d auth.Decision, m *macs) ([]byte, auth.Decision, error) {
	var code rad.Code
	switch d.Result {
	case auth.Accept:
		code = rad.CodeAccessAccept
	case auth.Challenge:
		code = rad.CodeAccessChallenge
		if len(d.State) == 0 || len(d.State) > maxAttrLen {
			d = auth.Decision{Result: auth.Reject, Reason: auth.ReasonInternal, Elapsed: d.Elapsed}
			code = rad.CodeAccessReject
		}
	case auth.Reject:
		code = rad.CodeAccessReject
	default:
		return nil, d, fmt.Errorf("radius: no response for result %v", d.Result)
	}
	resp := req.Response(code)
	switch code {
	case rad.CodeAccessChallenge:
		msg := d.Message
		if msg == "" {
			msg = defaultPrompt
		}
		resp.Attributes.Add(rfc2865.ReplyMessage_Type, rad.Attribute(truncateUTF8(msg, maxAttrLen)))
		resp.Attributes.Add(rfc2865.State_Type, rad.Attribute(append([]byte(nil), d.State...)))
	case rad.CodeAccessAccept:
		if d.Message != "" {
			resp.Attributes.Add(rfc2865.ReplyMessage_Type, rad.Attribute(truncateUTF8(d.Message, maxAttrLen)))
		}
	case rad.CodeAccessReject:
		// One uniform Reject. The only hint ever sent is the one auth gives
		// a user who proved the password but has not enrolled yet.
		if d.Reason == auth.ReasonNotEnrolled && d.Message != "" {
			resp.Attributes.Add(rfc2865.ReplyMessage_Type, rad.Attribute(truncateUTF8(d.Message, maxAttrLen)))
		}
		if f := eapFailure(req); f != nil {
			resp.Attributes.Add(eapMessageType, f)
		}
	}
	for _, avp := range req.Attributes {
		if avp.Type == proxyStateType {
			resp.Attributes.Add(proxyStateType, append(rad.Attribute(nil), avp.Attribute...))
		}
	}
	b, err := encodeSigned(resp, m)
	return b, d, err
}

// statusResponse answers Status-Server (RFC 5997) with an Access-Accept.
func statusResponse(req *rad.Packet, m *macs) ([]byte, error) {
	return encodeSigned(req.Response(rad.CodeAccessAccept), m)
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) []byte {
	if len(s) <= n {
		return []byte(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return []byte(s[:n])
}
