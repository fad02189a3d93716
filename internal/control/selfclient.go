package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// SelfClient talks to the self-enrollment socket: the caller enrolls
// themselves, as whoever their uid is.
type SelfClient struct{ c *Client }

// DialSelf connects to the self-enrollment socket and asks who the daemon
// takes the caller for. A missing socket, or one nothing listens on, gives
// an error wrapping ErrNotRunning.
func DialSelf(ctx context.Context, socketPath string) (*SelfClient, SelfStatus, error) {
	c := &Client{
		socket: socketPath,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socketPath)
			},
			DisableCompression: true,
			MaxIdleConns:       1,
			IdleConnTimeout:    30 * time.Second,
		}},
	}
	sc := &SelfClient{c: c}
	dctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	var st SelfStatus
	err := c.do(dctx, http.MethodGet, "/v1/self", nil, &st)
	switch {
	case err == nil:
		return sc, st, nil
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		c.hc.CloseIdleConnections()
		return nil, st, fmt.Errorf("%w (no self-enrollment socket at %s)", ErrNotRunning, socketPath)
	case errors.Is(err, syscall.EACCES):
		c.hc.CloseIdleConnections()
		return nil, st, fmt.Errorf("%w: %s: permission denied", ErrAccessDenied, socketPath)
	}
	return sc, st, err // the daemon answered with an error (unknown user, ...): the caller says it
}

// Close releases idle connections.
func (s *SelfClient) Close() error {
	s.c.hc.CloseIdleConnections()
	return nil
}

// Begin starts the caller's enrollment and returns the pending secret.
func (s *SelfClient) Begin(ctx context.Context) (SelfEnrollment, error) {
	var out SelfEnrollment
	if err := s.c.do(ctx, http.MethodPost, "/v1/self/enroll", struct{}{}, &out); err != nil {
		return out, err
	}
	if len(out.Secret) == 0 {
		return out, errors.New("control: self-enrollment: the daemon sent no secret")
	}
	return out, nil
}

// Activate sends a code from the app for the caller's pending token and
// returns the recovery codes.
func (s *SelfClient) Activate(ctx context.Context, code string) ([]string, error) {
	var out codesBody
	err := s.c.do(ctx, http.MethodPost, "/v1/self/totp", struct {
		Code string `json:"code"`
	}{code}, &out)
	return out.RecoveryCodes, err
}
