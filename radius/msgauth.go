package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"fmt"

	rad "layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

const (
	maType         = byte(rfc2869.MessageAuthenticator_Type) // 80
	maLen          = 2 + md5.Size                            // type, length, 16-octet HMAC
	proxyStateType = rfc2865.ProxyState_Type                 // 33
)

// maStatus is the outcome of checking a request's Message-Authenticator.
type maStatus int

const (
	maAbsent maStatus = iota
	maValid
	maInvalid // wrong HMAC, wrong length, more than one, or unparsable
)

// checkMessageAuthenticator verifies the Message-Authenticator of a request
// as received (raw is exactly Length octets): exactly one attribute of length
// 18 whose value is HMAC-MD5(secret, packet with the value zeroed), compared
// in constant time (RFC 3579 §3.2). The attribute may be anywhere.
func checkMessageAuthenticator(raw, secret []byte) maStatus {
	if len(raw) < 20 {
		return maInvalid
	}
	at := -1
	for off := 20; off < len(raw); {
		if off+2 > len(raw) {
			return maInvalid
		}
		l := int(raw[off+1])
		if l < 2 || off+l > len(raw) {
			return maInvalid
		}
		if raw[off] == maType {
			if at >= 0 || l != maLen {
				return maInvalid
			}
			at = off
		}
		off += l
	}
	if at < 0 {
		return maAbsent
	}
	// HMAC over the packet with the MA value read as zeros, without copying.
	var zero [md5.Size]byte
	m := hmac.New(md5.New, secret)
	m.Write(raw[:at+2])
	m.Write(zero[:])
	m.Write(raw[at+maLen:])
	if hmac.Equal(m.Sum(nil), raw[at+2:at+maLen]) {
		return maValid
	}
	return maInvalid
}

// encodeSigned encodes a response made with req.Response: it puts a
// Message-Authenticator FIRST, computes it over the packet with the Request
// Authenticator at octets 4..19 (what Response leaves there), and only then
// lets Encode compute the Response Authenticator over the signed packet.
func encodeSigned(resp *rad.Packet) ([]byte, error) {
	resp.Attributes.Del(rad.Type(maType))
	resp.Attributes = append(rad.Attributes{{Type: rad.Type(maType), Attribute: make([]byte, md5.Size)}}, resp.Attributes...)
	raw, err := resp.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("radius: marshal response: %w", err)
	}
	m := hmac.New(md5.New, resp.Secret)
	m.Write(raw)
	copy(resp.Attributes[0].Attribute, m.Sum(nil))
	b, err := resp.Encode()
	if err != nil {
		return nil, fmt.Errorf("radius: encode response: %w", err)
	}
	return b, nil
}

// hasProxyState reports whether the request carries any Proxy-State.
func hasProxyState(p *rad.Packet) bool {
	_, ok := p.Attributes.Lookup(proxyStateType)
	return ok
}
