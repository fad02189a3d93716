package control

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"github.com/otpgate/otpgate/internal/safefile"
)

// SelfClient talks to the self-enrollment socket: the caller enrolls
// themselves, as whoever their uid is.
type SelfClient struct{ c *Client }

// DialSelf connects to the self-enrollment socket and asks who the daemon
// takes the caller for. A missing socket, or one nothing listens on, gives
// an error wrapping ErrNotRunning.
//
// As Dial does, it sends nothing to a socket someone else could have put
// there: the socket's directory, and every one above, can be changed only
// by root, this user and otpgated's user; the socket belongs to one of
// them; and so does the process serving it (else ErrUntrusted). Whoever
// binds the name otherwise would choose the caller's key and see their
// codes.
func DialSelf(ctx context.Context, socketPath string) (*SelfClient, SelfStatus, error) {
	trusted := append([]int{0, os.Geteuid()}, socketDirOwner(socketPath)...)
	if err := checkSocket(socketPath, trusted, selfSocket); err != nil {
		return nil, SelfStatus{}, err
	}
	c := newClient(socketPath, trusted, 1)
	sc := &SelfClient{c: c}
	dctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	var st SelfStatus
	err := c.do(dctx, http.MethodGet, "/v1/self", nil, &st)
	if err == nil {
		return sc, st, nil
	}
	if err, ok := classifyDialErr(err, socketPath, selfSocket); ok {
		c.hc.CloseIdleConnections()
		return nil, st, err
	}
	return sc, st, err // the daemon answered with an error (unknown user, ...): the caller says it
}

// socketDirOwner is otpgated's uid as far as an ordinary user can tell
// (radiusd.toml is not theirs to read): the owner of the socket's
// directory, provided nobody but root and this user can change the
// directories above it, so that root gave it that owner (systemd's
// RuntimeDirectory for User=otpgate). None otherwise.
func socketDirOwner(socketPath string) []int {
	dir := filepath.Dir(socketPath)
	if safefile.SecureDir(filepath.Dir(dir), os.Geteuid()) != nil {
		return nil
	}
	if uid, err := safefile.Owner(dir); err == nil {
		return []int{uid}
	}
	return nil
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
