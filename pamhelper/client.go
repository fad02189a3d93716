package pamhelper

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// Answer is what a server said about one Access-Request.
type Answer int

// Answers a Client reports.
const (
	AnswerAccept Answer = iota + 1
	AnswerReject
	AnswerChallenge
)

func (a Answer) String() string {
	switch a {
	case AnswerAccept:
		return "accept"
	case AnswerReject:
		return "reject"
	case AnswerChallenge:
		return "challenge"
	}
	return fmt.Sprintf("Answer(%d)", int(a))
}

// ErrNoAnswer means no server sent a valid answer in time.
var ErrNoAnswer = errors.New("pamhelper: no server answered")

// Request is one login to check.
type Request struct {
	User             string
	Password         []byte // password+code (append) or the code alone (otp-only)
	CallingStationID string // PAM_RHOST, may be empty
}

// Client asks otpgated RADIUS servers, in order, with a Message-Authenticator
// on every request, and accepts only answers whose Response Authenticator and
// Message-Authenticator (required) verify.
type Client struct {
	Servers       []string
	Secret        []byte
	Timeout       time.Duration // per transmission
	Retries       int           // re-sends of the identical packet per server
	NASIdentifier string
	Log           *slog.Logger
}

// NewClient returns a Client for a loaded Config.
func NewClient(c *Config, log *slog.Logger) *Client {
	return &Client{
		Servers:       c.Servers,
		Secret:        []byte(c.Secret),
		Timeout:       c.Timeout.Duration,
		Retries:       c.RetryCount(),
		NASIdentifier: c.NASIdentifier,
		Log:           log,
	}
}

// Authenticate sends req to each server in turn until one answers. On
// timeout it re-sends the identical packet (same Identifier and Request
// Authenticator), so the server's reply cache answers a retransmission
// instead of checking the code a second time; the next server gets a fresh
// packet. It returns the answer and the server that gave it, or ErrNoAnswer.
// The worst case is Timeout*(Retries+1)*len(Servers).
func (c *Client) Authenticate(ctx context.Context, req Request) (Answer, string, error) {
	if len(req.Password) > MaxUserPassword {
		return 0, "", fmt.Errorf("pamhelper: authtok is %d bytes; RADIUS carries at most %d", len(req.Password), MaxUserPassword)
	}
	for _, server := range c.Servers {
		if err := ctx.Err(); err != nil {
			return 0, "", fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		pkt, err := buildRequest(c.Secret, req, c.NASIdentifier)
		if err != nil {
			return 0, "", err
		}
		ans, err := c.exchange(ctx, server, pkt)
		clear(pkt)
		if err == nil {
			return ans, server, nil
		}
		c.Log.Warn("radius server did not answer; trying the next", "server", server, "err", err)
	}
	return 0, "", ErrNoAnswer
}

// buildRequest encodes an Access-Request with a new random Identifier and
// Request Authenticator and a Message-Authenticator as its first attribute.
func buildRequest(secret []byte, req Request, nasID string) ([]byte, error) {
	p := radius.New(radius.CodeAccessRequest, secret)
	p.Attributes = radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}
	if err := rfc2865.UserName_SetString(p, req.User); err != nil {
		return nil, fmt.Errorf("pamhelper: User-Name: %w", err)
	}
	if err := rfc2865.UserPassword_Set(p, req.Password); err != nil {
		return nil, errors.New("pamhelper: User-Password cannot be encoded")
	}
	if err := rfc2865.NASIdentifier_SetString(p, nasID); err != nil {
		return nil, fmt.Errorf("pamhelper: NAS-Identifier: %w", err)
	}
	if err := rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_AuthenticateOnly); err != nil {
		return nil, fmt.Errorf("pamhelper: Service-Type: %w", err)
	}
	if req.CallingStationID != "" {
		if err := rfc2865.CallingStationID_SetString(p, req.CallingStationID); err != nil {
			return nil, fmt.Errorf("pamhelper: Calling-Station-Id: %w", err)
		}
	}
	b, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("pamhelper: encode Access-Request: %w", err)
	}
	// The MA is the first attribute: type at 20, length at 21, value 22..38.
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	copy(b[22:38], mac.Sum(nil))
	return b, nil
}

// exchange sends pkt to one server, re-sending it unchanged after each
// timeout, and returns the first answer that verifies.
func (c *Client) exchange(ctx context.Context, server string, pkt []byte) (Answer, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server) // connected: the kernel drops datagrams from other sources
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	id := pkt[1]
	var reqAuth [16]byte
	copy(reqAuth[:], pkt[4:20])
	buf := make([]byte, radius.MaxPacketLength+1)
	for try := 0; try <= c.Retries; try++ {
		if try > 0 {
			c.Log.Info("no answer; re-sending the same request", "server", server, "try", try+1)
		}
		if _, err := conn.Write(pkt); err != nil {
			return 0, fmt.Errorf("send: %w", err)
		}
		deadline := time.Now().Add(c.Timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return 0, fmt.Errorf("set deadline: %w", err)
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					return 0, errors.New("port unreachable (is otpgated running?)")
				}
				return 0, fmt.Errorf("receive: %w", err)
			}
			code, err := verifyResponse(buf[:n], id, reqAuth, c.Secret)
			if err != nil {
				c.Log.Warn("discarding a response that does not verify", "server", server, "err", err)
				continue
			}
			switch code {
			case radius.CodeAccessAccept:
				return AnswerAccept, nil
			case radius.CodeAccessReject:
				return AnswerReject, nil
			default:
				return AnswerChallenge, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no answer after %d tries of %s", c.Retries+1, c.Timeout)
}

// verifyResponse checks an answer to the request with Identifier id and
// Request Authenticator reqAuth: its shape, its code, its Response
// Authenticator and its Message-Authenticator, which must be present exactly
// once. Both checks compare in constant time.
func verifyResponse(b []byte, id byte, reqAuth [16]byte, secret []byte) (radius.Code, error) {
	if len(b) < 20 {
		return 0, errors.New("shorter than 20 bytes")
	}
	length := int(binary.BigEndian.Uint16(b[2:4]))
	if length < 20 || length > len(b) || length > radius.MaxPacketLength {
		return 0, errors.New("bad length field")
	}
	b = b[:length]
	code := radius.Code(b[0])
	switch code {
	case radius.CodeAccessAccept, radius.CodeAccessReject, radius.CodeAccessChallenge:
	default:
		return 0, fmt.Errorf("unexpected code %d", code)
	}
	if b[1] != id {
		return 0, fmt.Errorf("identifier %d, want %d", b[1], id)
	}
	maOff := -1
	for i := 20; i < len(b); {
		if i+2 > len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			return 0, errors.New("malformed attributes")
		}
		if b[i] == byte(rfc2869.MessageAuthenticator_Type) {
			if b[i+1] != 18 {
				return 0, errors.New("Message-Authenticator with a bad length")
			}
			if maOff >= 0 {
				return 0, errors.New("two Message-Authenticators")
			}
			maOff = i + 2
		}
		i += int(b[i+1])
	}

	h := md5.New()
	h.Write(b[:4])
	h.Write(reqAuth[:])
	h.Write(b[20:])
	h.Write(secret)
	if subtle.ConstantTimeCompare(h.Sum(nil), b[4:20]) != 1 {
		return 0, errors.New("bad Response Authenticator (wrong secret?)")
	}

	if maOff < 0 {
		return 0, errors.New("no Message-Authenticator (otpgated always sends one)")
	}
	tmp := append([]byte(nil), b...)
	copy(tmp[4:20], reqAuth[:])
	clear(tmp[maOff : maOff+16])
	mac := hmac.New(md5.New, secret)
	mac.Write(tmp)
	if !hmac.Equal(mac.Sum(nil), b[maOff:maOff+16]) {
		return 0, errors.New("bad Message-Authenticator")
	}
	return code, nil
}
