package loadgen

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// Errors of Client.Authenticate.
var (
	ErrTimeout = errors.New("loadgen: no valid response before the timeout")
)

// Response is a verified answer to an Access-Request.
type Response struct {
	Code  radius.Code // CodeAccessAccept, CodeAccessReject or CodeAccessChallenge
	State []byte      // State of an Access-Challenge
	HasMA bool        // the response carried a (valid) Message-Authenticator
}

// Client sends Access-Requests over one UDP socket, one at a time. It is not
// safe for concurrent use; give each goroutine its own.
type Client struct {
	conn    *net.UDPConn
	secret  []byte
	timeout time.Duration
	retries int
	id      byte
	buf     []byte

	// Invalid counts responses that were dropped: wrong Identifier, bad
	// Response Authenticator, bad or duplicate Message-Authenticator.
	Invalid int
	// Sent counts datagrams sent, retransmissions included.
	Sent int
}

// NewClient dials server (host:port, UDP). timeout bounds the wait for each
// try; retries is the number of retransmissions (same Identifier and
// Authenticator) after a timeout.
func NewClient(server string, secret []byte, timeout time.Duration, retries int) (*Client, error) {
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, fmt.Errorf("loadgen: server %q: %w", server, err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", server, err)
	}
	var idb [1]byte
	rand.Read(idb[:])
	return &Client{conn: conn, secret: secret, timeout: timeout, retries: retries, id: idb[0], buf: make([]byte, 4096)}, nil
}

// Close closes the socket.
func (c *Client) Close() error { return c.conn.Close() }

// Authenticate sends one Access-Request (User-Name, User-Password, State if
// non-nil, NAS-Identifier, Message-Authenticator first) and returns the
// verified response, or ErrTimeout.
func (c *Client) Authenticate(ctx context.Context, user, pw string, state []byte) (Response, error) {
	c.id++
	pkt, reqAuth, err := buildRequest(c.secret, c.id, user, pw, state)
	if err != nil {
		return Response{}, err
	}
	for try := 0; try <= c.retries; try++ {
		if err := ctx.Err(); err != nil {
			return Response{}, err
		}
		if _, err := c.conn.Write(pkt); err != nil {
			return Response{}, fmt.Errorf("loadgen: send: %w", err)
		}
		c.Sent++
		deadline := time.Now().Add(c.timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.conn.SetReadDeadline(deadline)
		for {
			n, err := c.conn.Read(c.buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit or give up
				}
				// ECONNREFUSED from an earlier datagram (nothing listens):
				// keep waiting for this try's deadline.
				if time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
					continue
				}
				break
			}
			resp, ok := verifyResponse(c.buf[:n], c.id, reqAuth, c.secret)
			if !ok {
				c.Invalid++
				continue
			}
			return resp, nil
		}
	}
	return Response{}, ErrTimeout
}

// buildRequest returns the wire form of an Access-Request with a random
// Request Authenticator and a valid Message-Authenticator as its first
// attribute (RFC 3579 §3.2).
func buildRequest(secret []byte, id byte, user, pw string, state []byte) ([]byte, [16]byte, error) {
	var auth [16]byte
	p := radius.New(radius.CodeAccessRequest, secret)
	p.Identifier = id
	copy(auth[:], p.Authenticator[:])
	p.Attributes = radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}
	if err := rfc2865.UserName_SetString(p, user); err != nil {
		return nil, auth, fmt.Errorf("loadgen: user name: %w", err)
	}
	if err := rfc2865.UserPassword_SetString(p, pw); err != nil {
		return nil, auth, fmt.Errorf("loadgen: user password: %w", err)
	}
	if state != nil {
		if err := rfc2865.State_Set(p, state); err != nil {
			return nil, auth, fmt.Errorf("loadgen: state: %w", err)
		}
	}
	rfc2865.NASIdentifier_SetString(p, "otpgate-bench")
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, auth, fmt.Errorf("loadgen: marshal: %w", err)
	}
	// The MA is the first attribute: value at octets 22..37.
	m := hmac.New(md5.New, secret)
	m.Write(b)
	copy(b[22:38], m.Sum(nil))
	return b, auth, nil
}

// verifyResponse checks Identifier, Length, the Response Authenticator
// (MD5(Code+ID+Length+RequestAuth+Attributes+Secret), RFC 2865 §3) and, when
// present, the Message-Authenticator (exactly one, HMAC-MD5 over the packet
// with the Request Authenticator in place and the value zeroed).
func verifyResponse(b []byte, id byte, reqAuth [16]byte, secret []byte) (Response, bool) {
	if len(b) < 20 || b[1] != id {
		return Response{}, false
	}
	l := int(b[2])<<8 | int(b[3])
	if l < 20 || l > len(b) {
		return Response{}, false
	}
	b = b[:l]
	code := radius.Code(b[0])
	if code != radius.CodeAccessAccept && code != radius.CodeAccessReject && code != radius.CodeAccessChallenge {
		return Response{}, false
	}
	h := md5.New()
	h.Write(b[:4])
	h.Write(reqAuth[:])
	h.Write(b[20:])
	h.Write(secret)
	if subtle.ConstantTimeCompare(h.Sum(nil), b[4:20]) != 1 {
		return Response{}, false
	}
	resp := Response{Code: code}
	maOff := -1
	for off := 20; off < l; {
		if off+2 > l {
			return Response{}, false
		}
		al := int(b[off+1])
		if al < 2 || off+al > l {
			return Response{}, false
		}
		switch b[off] {
		case byte(rfc2869.MessageAuthenticator_Type):
			if maOff >= 0 || al != 18 {
				return Response{}, false
			}
			maOff = off + 2
		case byte(rfc2865.State_Type):
			resp.State = append([]byte(nil), b[off+2:off+al]...)
		}
		off += al
	}
	if maOff >= 0 {
		cp := make([]byte, l)
		copy(cp, b)
		copy(cp[4:20], reqAuth[:])
		clear(cp[maOff : maOff+16])
		m := hmac.New(md5.New, secret)
		m.Write(cp)
		if !hmac.Equal(m.Sum(nil), b[maOff:maOff+16]) {
			return Response{}, false
		}
		resp.HasMA = true
	}
	return resp, true
}
