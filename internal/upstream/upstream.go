// Package upstream checks passwords with another RADIUS server (such as
// Microsoft NPS): its Access-Accept is the first factor, the code stays
// otpgate's. Requests carry a Message-Authenticator and answers must carry
// a valid one and a valid Response Authenticator. It implements
// auth.PasswordChecker; the daemon wires it in with [password] source =
// "radius".
package upstream

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/otpgate/otpgate/auth"
)

// ErrUnavailable means no server sent a valid answer in time.
var ErrUnavailable = errors.New("upstream: no RADIUS server answered")

// Options configures a Source. The daemon builds it from [radius_upstream].
type Options struct {
	Servers       []string // host:port, tried in order
	Secret        []byte
	Timeout       time.Duration // per server
	NASIdentifier string
	Log           *slog.Logger
}

// Source is an auth.PasswordChecker over RADIUS.
type Source struct {
	opt                              Options
	log                              *slog.Logger
	checks, unavailable, serverFails atomic.Uint64
}

var _ auth.PasswordChecker = (*Source)(nil)

// New checks opt and returns a Source.
func New(opt Options) (*Source, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(opt.Servers) == 0:
		return nil, errors.New("upstream: no servers")
	case len(opt.Secret) == 0:
		return nil, errors.New("upstream: empty secret")
	case opt.Timeout <= 0:
		return nil, errors.New("upstream: Timeout must be positive")
	}
	return &Source{opt: opt, log: opt.Log.With("component", "radius_upstream")}, nil
}

// Stats returns the counters.
func (s *Source) Stats() auth.SourceStats {
	return auth.SourceStats{Checks: s.checks.Load(), Unavailable: s.unavailable.Load(), ServerFails: s.serverFails.Load()}
}

// Check implements auth.PasswordChecker. Servers are asked in order; the
// first valid answer counts (a Reject too: it is never asked elsewhere).
func (s *Source) Check(ctx context.Context, user, password string) (auth.PasswordResult, error) {
	s.checks.Add(1)
	if password == "" {
		return auth.PasswordResult{}, nil
	}
	var errs []error
	for _, server := range s.opt.Servers {
		code, err := s.ask(ctx, server, user, password)
		if err == nil {
			return auth.PasswordResult{OK: code == radius.CodeAccessAccept}, nil
		}
		s.serverFails.Add(1)
		s.log.Warn("upstream RADIUS server did not answer", "server", server, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
		if ctx.Err() != nil {
			break
		}
	}
	s.unavailable.Add(1)
	s.log.Error("upstream: no RADIUS server answered; the login is rejected", "user", user, "servers", s.opt.Servers)
	return auth.PasswordResult{}, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (s *Source) ask(ctx context.Context, server, user, password string) (radius.Code, error) {
	p := radius.New(radius.CodeAccessRequest, s.opt.Secret)
	p.Attributes = radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}
	if err := rfc2865.UserName_SetString(p, user); err != nil {
		return 0, fmt.Errorf("User-Name: %w", err)
	}
	if err := rfc2865.UserPassword_SetString(p, password); err != nil {
		return 0, errors.New("User-Password cannot be encoded")
	}
	if err := rfc2865.NASIdentifier_SetString(p, s.opt.NASIdentifier); err != nil {
		return 0, fmt.Errorf("NAS-Identifier: %w", err)
	}
	b, err := p.Encode()
	if err != nil {
		return 0, err
	}
	p.Attributes[0].Attribute = messageAuthenticator(b, s.opt.Secret)
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	resp, err := (&radius.Client{Retry: time.Second}).Exchange(ctx, p, server) // verifies the Response Authenticator
	if err != nil {
		return 0, err
	}
	if !validMessageAuthenticator(resp, p.Authenticator, s.opt.Secret) {
		return 0, errors.New("answer without a valid Message-Authenticator")
	}
	switch resp.Code {
	case radius.CodeAccessAccept, radius.CodeAccessReject:
		return resp.Code, nil
	case radius.CodeAccessChallenge:
		return radius.CodeAccessReject, nil // a second round is not ours to answer
	}
	return 0, fmt.Errorf("unexpected answer %v", resp.Code)
}

// messageAuthenticator is HMAC-MD5 over the packet b whose
// Message-Authenticator is zero (RFC 3579 §3.2).
func messageAuthenticator(b, secret []byte) []byte {
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	return mac.Sum(nil)
}

// validMessageAuthenticator checks resp's Message-Authenticator, computed
// with the request's authenticator in place of the response's.
func validMessageAuthenticator(resp *radius.Packet, reqAuth [16]byte, secret []byte) bool {
	c := *resp
	c.Attributes = make(radius.Attributes, len(resp.Attributes))
	copy(c.Attributes, resp.Attributes)
	var got []byte
	for i, a := range c.Attributes {
		if a.Type == rfc2869.MessageAuthenticator_Type {
			if got != nil || len(a.Attribute) != 16 {
				return false
			}
			got = a.Attribute
			c.Attributes[i] = &radius.AVP{Type: a.Type, Attribute: make([]byte, 16)}
		}
	}
	if got == nil {
		return false
	}
	c.Authenticator = reqAuth
	b, err := c.MarshalBinary()
	return err == nil && hmac.Equal(got, messageAuthenticator(b, secret))
}
