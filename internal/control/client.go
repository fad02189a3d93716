package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/safefile"
)

// dialTimeout bounds the liveness check in Dial.
const dialTimeout = time.Second

// Client implements admin.Service over the control socket.
type Client struct {
	socket string
	hc     *http.Client
}

var _ admin.Service = (*Client)(nil)

// Dial connects to the daemon's control socket and checks that it answers
// GET /v1/status within a second. A missing socket, or one nothing listens
// on, gives an error wrapping ErrNotRunning (the CLI then opens the store
// itself); a socket this user may not use (no permission on the file, or a
// daemon that closes the connection unanswered) gives ErrAccessDenied.
//
// Nothing is sent unless the socket can be trusted with what root types:
// its directory, and every one above, can be changed only by root, this
// user and daemonUIDs (safefile.SecureDir); the socket file belongs to one
// of them; and so does the process that accepts the connection
// (SO_PEERCRED). Otherwise the error wraps ErrUntrusted.
func Dial(socketPath string, daemonUIDs ...int) (admin.Service, error) {
	return DialClient(socketPath, daemonUIDs...)
}

// DialClient is Dial returning the concrete *Client (for Status).
func DialClient(socketPath string, daemonUIDs ...int) (*Client, error) {
	trusted := append([]int{0, os.Geteuid()}, daemonUIDs...)
	if err := checkSocket(socketPath, trusted, adminSocket); err != nil {
		return nil, err
	}
	c := newClient(socketPath, trusted, 2)
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		c.hc.CloseIdleConnections()
		if err, ok := classifyDialErr(err, socketPath, adminSocket); ok {
			return nil, err
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("control: otpgated on %s did not answer within %s", socketPath, dialTimeout)
		case closedAtAccept(socketPath):
			// The daemon checks SO_PEERCRED at accept and closes a refused
			// peer's connection without a reply; depending on timing the
			// HTTP client reports that as a reset, an EOF or a closed idle
			// connection, so ask the socket directly.
			return nil, fmt.Errorf("%w: otpgated on %s closes this user's connections unanswered (run as root, the daemon's user or a member of control.group)", ErrAccessDenied, socketPath)
		}
		return nil, err
	}
	return c, nil
}

// socketRole says, in a client's errors, which socket it dialed and what
// a user refused access can do.
type socketRole struct {
	missing string // before the path, after ErrNotRunning
	denied  string // after "permission denied"
}

var (
	adminSocket = socketRole{missing: "no daemon on", denied: " (run as root, the daemon's user or a member of control.group)"}
	selfSocket  = socketRole{missing: "no self-enrollment socket at"}
)

// classifyDialErr turns an error met while checking or first using a
// socket into ErrUntrusted (as it is, without the request's URL),
// ErrNotRunning (no socket, or nothing listens on it) or ErrAccessDenied
// (no permission). ok is false for any other error, returned unchanged.
func classifyDialErr(err error, socketPath string, role socketRole) (_ error, ok bool) {
	switch {
	case errors.Is(err, ErrUntrusted):
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the request's method and URL
		}
		return err, true
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (%s %s)", ErrNotRunning, role.missing, socketPath), true
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %s: permission denied%s", ErrAccessDenied, socketPath, role.denied), true
	}
	return err, false
}

// newClient returns a client on socketPath that checks, on every
// connection and before anything is written, that the process serving it
// runs as one of trusted (checkPeer).
func newClient(socketPath string, trusted []int, maxIdle int) *Client {
	return &Client{
		socket: socketPath,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "unix", socketPath)
				if err != nil {
					return nil, err
				}
				if err := checkPeer(conn, socketPath, trusted); err != nil {
					conn.Close()
					return nil, err
				}
				return conn, nil
			},
			DisableCompression: true,
			MaxIdleConns:       maxIdle,
			IdleConnTimeout:    30 * time.Second,
		}},
	}
}

// checkSocket refuses, before anything is sent, a socket whose directory
// untrusted users can change or that an untrusted user owns. A missing
// directory or socket means no daemon runs.
func checkSocket(socketPath string, trusted []int, role socketRole) error {
	if err := safefile.SecureDir(filepath.Dir(socketPath), trusted[1:]...); err != nil {
		if err, ok := classifyDialErr(err, socketPath, role); ok {
			return err
		}
		return fmt.Errorf("%w: %s is in a directory others can change: %w", ErrUntrusted, socketPath, err)
	}
	fi, err := os.Stat(socketPath)
	if err != nil {
		if err, ok := classifyDialErr(err, socketPath, role); ok {
			return err
		}
		return fmt.Errorf("control: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !slices.Contains(trusted, int(st.Uid)) {
		return fmt.Errorf("%w: %s is owned by %s, not by root, you or otpgated's user; fix: stop whatever made it and remove it (rm %s), then start otpgated",
			ErrUntrusted, socketPath, safefile.UserName(int(st.Uid)), socketPath)
	}
	return nil
}

// checkPeer refuses a connection whose server process runs as an
// untrusted user (SO_PEERCRED), before the first byte is written.
func checkPeer(conn net.Conn, socketPath string, trusted []int) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%w: %s: not a Unix socket connection", ErrUntrusted, socketPath)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("%w: %s: peer credentials: %w", ErrUntrusted, socketPath, credErr)
	}
	if !slices.Contains(trusted, int(cred.Uid)) {
		return fmt.Errorf("%w: the process serving %s (pid %d) runs as %s, not as root, you or otpgated's user; nothing was sent to it",
			ErrUntrusted, socketPath, cred.Pid, safefile.UserName(int(cred.Uid)))
	}
	return nil
}

// closedAtAccept reports whether the daemon on socketPath closes a new
// connection before anything is sent on it, which it does only for a peer
// it refuses. A daemon that serves this user waits for the request instead.
func closedAtAccept(socketPath string) bool {
	c, err := net.DialTimeout("unix", socketPath, 250*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET))
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Status asks the daemon for its version and pid.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

func userPath(name string, rest string) string {
	return "/v1/users/" + url.PathEscape(name) + rest
}

// AddUser implements admin.Service.
func (c *Client) AddUser(ctx context.Context, u admin.NewUser) error {
	return c.do(ctx, http.MethodPost, "/v1/users", u, nil)
}

// SetPassword implements admin.Service.
func (c *Client) SetPassword(ctx context.Context, name, password string) error {
	return c.do(ctx, http.MethodPut, userPath(name, "/password"), passwordBody{Password: password}, nil)
}

// ListUsers implements admin.Service.
func (c *Client) ListUsers(ctx context.Context) ([]admin.UserInfo, error) {
	var users []admin.UserInfo
	if err := c.do(ctx, http.MethodGet, "/v1/users", nil, &users); err != nil {
		return nil, err
	}
	return users, nil
}

// ShowUser implements admin.Service.
func (c *Client) ShowUser(ctx context.Context, name string) (admin.UserInfo, error) {
	var u admin.UserInfo
	err := c.do(ctx, http.MethodGet, userPath(name, ""), nil, &u)
	return u, err
}

// SetDisabled implements admin.Service.
func (c *Client) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return c.do(ctx, http.MethodPut, userPath(name, "/disabled"), disabledBody{Disabled: disabled}, nil)
}

// DeleteUser implements admin.Service.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, userPath(name, ""), nil, nil)
}

// Unlock implements admin.Service.
func (c *Client) Unlock(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, userPath(name, "/unlock"), nil, nil)
}

// SetGroups implements admin.Service.
func (c *Client) SetGroups(ctx context.Context, name string, groups []string) error {
	if groups == nil {
		groups = []string{}
	}
	return c.do(ctx, http.MethodPut, userPath(name, "/groups"), groupsBody{Groups: groups}, nil)
}

// BeginEnroll implements admin.Service.
func (c *Client) BeginEnroll(ctx context.Context, name string, force bool) ([]byte, error) {
	var out enrollReply
	if err := c.do(ctx, http.MethodPost, userPath(name, "/enroll"), forceBody{Force: force}, &out); err != nil {
		return nil, err
	}
	if len(out.Secret) == 0 {
		return nil, fmt.Errorf("control: begin enrollment of %q: the daemon sent no secret", name)
	}
	return out.Secret, nil
}

// ActivateTOTP implements admin.Service.
func (c *Client) ActivateTOTP(ctx context.Context, name string, code string, force bool) ([]string, error) {
	var out codesBody
	if err := c.do(ctx, http.MethodPost, userPath(name, "/totp"), totpBody{Code: code, Force: force}, &out); err != nil {
		return nil, err
	}
	return out.RecoveryCodes, nil
}

// ResetMFA implements admin.Service.
func (c *Client) ResetMFA(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, userPath(name, "/totp"), nil, nil)
}

// NewRecoveryCodes implements admin.Service.
func (c *Client) NewRecoveryCodes(ctx context.Context, name string) ([]string, error) {
	var out codesBody
	if err := c.do(ctx, http.MethodPost, userPath(name, "/recovery-codes"), nil, &out); err != nil {
		return nil, err
	}
	return out.RecoveryCodes, nil
}

// Import implements admin.Service.
func (c *Client) Import(ctx context.Context, users []admin.ImportUser) (int, error) {
	if users == nil {
		users = []admin.ImportUser{}
	}
	var out importResult
	if err := c.do(ctx, http.MethodPost, "/v1/import", users, &out); err != nil {
		return 0, err
	}
	return out.Imported, nil
}

// Backup implements admin.Service: the daemon streams a consistent copy of
// the database; an error after streaming started arrives in a trailer and
// is returned after the bytes copied so far.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, readError(resp)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("control: backup: %w", err)
	}
	if msg := resp.Trailer.Get(trailerError); msg != "" {
		return n, decodeError(http.StatusInternalServerError, errorBody{Error: msg, Code: resp.Trailer.Get(trailerCode)})
	}
	if want := resp.Trailer.Get(trailerBytes); want != fmt.Sprint(n) {
		return n, fmt.Errorf("control: backup: received %d bytes, daemon reported %q", n, want)
	}
	return n, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control: %s %s: decode reply: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+Host+path, body)
	if err != nil {
		return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	var body errorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) != nil || body.Error == "" {
		body = errorBody{Error: fmt.Sprintf("control: daemon answered %s: %s", resp.Status, bytes.TrimSpace(b))}
	}
	return decodeError(resp.StatusCode, body)
}
