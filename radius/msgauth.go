package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"fmt"
	"hash"
	"sync"

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

// macs is a pool of HMAC-MD5 states keyed with one client's shared secret:
// the key schedule (two MD5 blocks and a handful of allocations) runs once
// per state, not once per packet.
type macs struct {
	secret []byte
	pool   sync.Pool
}

func newMACs(secret []byte) *macs {
	m := &macs{secret: secret}
	m.pool.New = func() any { return hmac.New(md5.New, m.secret) }
	return m
}

// sum appends to dst the HMAC-MD5 of the concatenated parts.
func (m *macs) sum(dst []byte, parts ...[]byte) []byte {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		h.Write(p)
	}
	dst = h.Sum(dst)
	m.pool.Put(h)
	return dst
}

// checkMessageAuthenticator verifies the Message-Authenticator of a request
// as received (raw is exactly Length octets): exactly one attribute of length
// 18 whose value is HMAC-MD5(secret, packet with the value zeroed), compared
// in constant time (RFC 3579 §3.2). The attribute may be anywhere.
func checkMessageAuthenticator(raw []byte, m *macs) maStatus {
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
	var zero, sum [md5.Size]byte
	m.sum(sum[:0], raw[:at+2], zero[:], raw[at+maLen:])
	if hmac.Equal(sum[:], raw[at+2:at+maLen]) {
		return maValid
	}
	return maInvalid
}

// encodeSigned encodes a response made with req.Response (resp.Authenticator
// is still the Request Authenticator) in one buffer: a Message-Authenticator
// first, computed over the packet with the Request Authenticator at octets
// 4..19 (RFC 3579 §3.2), then the Response Authenticator, MD5(Code, ID,
// Length, Request Authenticator, attributes, secret) (RFC 2865 §3), over
// the signed packet. m is the client's HMAC pool (resp.Secret's).
func encodeSigned(resp *rad.Packet, m *macs) ([]byte, error) {
	size := 20 + maLen
	for _, a := range resp.Attributes {
		if a.Type == rad.Type(maType) {
			continue
		}
		if len(a.Attribute) > 253 {
			return nil, fmt.Errorf("radius: encode response: attribute %d is %d octets long, over 253", a.Type, len(a.Attribute))
		}
		size += 2 + len(a.Attribute)
	}
	if size > rad.MaxPacketLength {
		return nil, fmt.Errorf("radius: encode response: %d octets, over %d", size, rad.MaxPacketLength)
	}
	b := make([]byte, 0, size+len(m.secret)) // room to hash the secret after it
	b = append(b, byte(resp.Code), resp.Identifier, byte(size>>8), byte(size))
	b = append(b, resp.Authenticator[:]...)
	b = append(b, maType, maLen)
	b = append(b, make([]byte, md5.Size)...)
	for _, a := range resp.Attributes {
		if a.Type != rad.Type(maType) {
			b = append(b, byte(a.Type), byte(2+len(a.Attribute)))
			b = append(b, a.Attribute...)
		}
	}
	m.sum(b[22:22], b)
	auth := md5.Sum(append(b, m.secret...))
	copy(b[4:20], auth[:])
	return b, nil
}

// hasProxyState reports whether the request carries any Proxy-State.
func hasProxyState(p *rad.Packet) bool {
	_, ok := p.Attributes.Lookup(proxyStateType)
	return ok
}
