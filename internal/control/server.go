// Package control is the Unix control socket between otpgated and the
// otpgate CLI: HTTP/1.1 over a socket file that only root, the daemon's own
// user and an optional admin group may use. The server exposes every
// admin.Service method; Dial returns a client that implements
// admin.Service, so the CLI runs the same code whether the daemon owns the
// database or the CLI opens it itself.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/safefile"
)

// Host is the only Host header the server accepts. Browsers cannot reach a
// Unix socket, but the check (with the Origin/Referer one) keeps a local
// HTTP proxy or a DNS-rebinding page from being turned against it.
const Host = "otpgated"

// Request body limits.
const (
	maxBody       = 64 << 10
	maxImportBody = 32 << 20
)

// ServerOptions configures who may use the socket.
type ServerOptions struct {
	// Group, when set, may use the socket besides root and the daemon's
	// user: the socket gets mode 0660 and this group.
	Group string
	// Version is reported by GET /v1/status.
	Version string
	// MaxConns bounds the connections open at once (0: DefaultMaxConns).
	MaxConns int
}

// Server serves admin.Service on a Unix socket.
type Server struct {
	svc     admin.Service
	opt     ServerOptions
	log     *slog.Logger
	started time.Time
	// allow decides whether a peer may use the socket.
	allow func(peer unix.Ucred) bool
}

// NewServer returns a server for svc. Peers are authorized with SO_PEERCRED
// when their connection is accepted (a refused peer's connection is closed
// before anything is read from it) and again on every request: uid 0, the
// daemon's effective uid, or (when opt.Group is set) a member of that group.
func NewServer(svc admin.Service, opt ServerOptions, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, opt: opt, log: log.With("component", "control"), started: time.Now()}
	euid := uint32(os.Geteuid())
	gid := int64(-1) // a bad group is reported by Listen, which needs it too
	if n, err := lookupGID(opt.Group); err == nil {
		gid = int64(n)
	}
	s.allow = func(p unix.Ucred) bool {
		if p.Uid == 0 || p.Uid == euid {
			return true
		}
		if gid < 0 {
			return false
		}
		if int64(p.Gid) == gid {
			return true
		}
		return userInGroup(p.Uid, gid)
	}
	return s
}

func userInGroup(uid uint32, gid int64) bool {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return false
	}
	ids, err := u.GroupIds()
	if err != nil {
		return false
	}
	return slices.Contains(ids, strconv.FormatInt(gid, 10))
}

// ServeListener serves on ln until ctx is done, then shuts down and closes
// ln (which, from Listen, removes the socket file). Connections are
// checked and bounded at Accept (see peerListener).
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	pl := newPeerListener(ln, func(p unix.Ucred) bool { return s.allow(p) }, s.opt.MaxConns, newRefusalLog(s.log, s.opt.Group))
	return serve(ctx, pl, newHTTPServer(s.Handler(), s.log), "control")
}

// newHTTPServer is the HTTP server both sockets run h on.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serve runs srv on ln until ctx is done, then shuts it down, cutting off
// requests still running after a grace time, and closes ln. Errors start
// with what.
func serve(ctx context.Context, ln net.Listener, srv *http.Server, what string) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		ln.Close()
		return fmt.Errorf("%s: serve: %w", what, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx) // closes ln
	if err != nil {
		srv.Close() // requests still running after the grace time: cut them off
	}
	ln.Close()
	<-errc
	if err != nil {
		return fmt.Errorf("%s: shutdown: %w", what, err)
	}
	return nil
}

// Listen creates the socket at path: the parent directory is created 0700
// when missing; a stale socket file is removed only when it is this user's
// and nothing answers on it (a live daemon makes Listen fail with
// ErrAlreadyRunning; anything else at path, a symlink included, is refused);
// the socket is bound in a new private directory beside path, given mode
// 0600 (0660 and the group with ServerOptions.Group) there and renamed into
// place, so it never exists at path with looser permissions and no chmod
// acts on a name someone else could swap. Closing the listener removes the
// socket file.
func (s *Server) Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	gid := -1
	if s.opt.Group != "" {
		var err error
		if gid, err = lookupGID(s.opt.Group); err != nil {
			return nil, err
		}
		mode = 0o660
	}
	return bindSocket(path, mode, gid)
}

// bindSocket binds a Unix socket at path with mode (and group gid, unless
// -1). The socket is made in a private temporary directory beside path,
// given its mode there and renamed into place, so it never exists at path
// with looser permissions and nobody can plant a name to be followed.
func bindSocket(path string, mode os.FileMode, gid int) (net.Listener, error) {
	dir := filepath.Dir(path)
	priv, err := os.MkdirTemp(dir, ".otpgated-")
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer os.Remove(priv) // empty once the socket is renamed out, or removed
	bindPath := filepath.Join(priv, "s")
	if len(bindPath) > maxSocketPath {
		// No room for the private name: bind at path and set the mode
		// right after. The daemon has checked that nobody else can write
		// dir (safefile.SecureDir), so nobody can swap the name between.
		bindPath = path
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(bindPath)
		return nil, fmt.Errorf("control: %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Lchown(bindPath, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(bindPath, mode); err != nil {
		return fail(err)
	}
	if bindPath != path {
		if err := os.Rename(bindPath, path); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: ln, path: path, fi: fi}, nil
}

// maxSocketPath is the longest socket path bind takes (sun_path holds 108
// bytes with the terminating NUL).
const maxSocketPath = 107

// removeStale removes a socket file nothing listens on. It refuses to touch
// anything that is not a socket (a symlink is not followed), a socket a
// daemon answers on, and another user's socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control: %s exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w (%s); stop it first", ErrAlreadyRunning, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control: probe existing socket %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("control: %s is a stale socket owned by %s, not by this user; refusing to remove it (remove it by hand if it is not in use)", path, safefile.UserName(int(st.Uid)))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control: remove stale socket: %w", err)
	}
	return nil
}

// socketListener removes its socket file on Close, unless another process
// has replaced it since.
type socketListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		os.Remove(l.path)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type peerKey struct{}

func withPeer(ctx context.Context, cred unix.Ucred) context.Context {
	return context.WithValue(ctx, peerKey{}, cred)
}

func peerFrom(ctx context.Context) (unix.Ucred, bool) {
	c, ok := ctx.Value(peerKey{}).(unix.Ucred)
	return c, ok
}

// Handler is the HTTP handler behind the socket: the guard (peer
// credentials, Host, Origin/Referer) in front of the routes.
func (s *Server) Handler() http.Handler {
	routes := s.routes()
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: fmt.Sprintf("control: %s %s: method not allowed (use %s)", r.Method, r.URL.Path, allow)})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "control: no such endpoint " + r.Method + " " + r.URL.Path})
	})
	return s.guard(mux)
}

// route is one endpoint of the control API.
type route struct {
	method, path string
	h            http.HandlerFunc
}

// routes is the control API; tests walk it, so a new route is covered by
// the access tests without being listed there.
func (s *Server) routes() []route {
	return []route{
		{"GET", "/v1/status", s.status},
		{"GET", "/v1/users", s.listUsers},
		{"POST", "/v1/users", s.addUser},
		{"GET", "/v1/users/{name}", s.showUser},
		{"DELETE", "/v1/users/{name}", s.deleteUser},
		{"PUT", "/v1/users/{name}/password", s.setPassword},
		{"PUT", "/v1/users/{name}/disabled", s.setDisabled},
		{"PUT", "/v1/users/{name}/groups", s.setGroups},
		{"POST", "/v1/users/{name}/unlock", s.unlock},
		{"POST", "/v1/users/{name}/enroll", s.beginEnroll},
		{"POST", "/v1/users/{name}/totp", s.activateTOTP},
		{"DELETE", "/v1/users/{name}/totp", s.resetMFA},
		{"POST", "/v1/users/{name}/recovery-codes", s.newRecoveryCodes},
		{"POST", "/v1/import", s.importUsers},
		{"GET", "/v1/backup", s.backup},
		{"POST", "/v1/users/{name}/enroll-link", s.issueEnrollLink},
	}
}

func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := checkRequest(w, r, s.log)
		if !ok {
			return
		}
		if !s.allow(peer) {
			s.log.Warn("control request refused: peer not allowed", "uid", peer.Uid, "pid", peer.Pid)
			msg := fmt.Sprintf("control: uid %d may not use this socket (root or the daemon's user only)", peer.Uid)
			if s.opt.Group != "" {
				msg = fmt.Sprintf("control: uid %d may not use this socket (root, the daemon's user or group %q only)", peer.Uid, s.opt.Group)
			}
			writeJSON(w, http.StatusForbidden, errorBody{Error: msg, Code: "access_denied"})
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.Debug("control request", "method", r.Method, "path", r.URL.Path, "uid", peer.Uid, "status", rec.status)
	})
}

// checkRequest is what both sockets ask of every request before its peer
// is looked at: no Origin or Referer, Host otpgated, and the peer's
// credentials. It answers 403 and reports false otherwise.
func checkRequest(w http.ResponseWriter, r *http.Request, log *slog.Logger) (unix.Ucred, bool) {
	peer, ok := peerFrom(r.Context())
	switch {
	case r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "":
		log.Warn("control request refused: has Origin or Referer", "method", r.Method, "path", r.URL.Path)
		writeJSON(w, http.StatusForbidden, errorBody{Error: "control: requests with Origin or Referer are refused", Code: "access_denied"})
		return peer, false
	case r.Host != Host:
		log.Warn("control request refused: wrong Host", "host", r.Host)
		writeJSON(w, http.StatusForbidden, errorBody{Error: fmt.Sprintf("control: Host must be %q", Host), Code: "access_denied"})
		return peer, false
	case !ok:
		writeJSON(w, http.StatusForbidden, errorBody{Error: "control: peer credentials unavailable", Code: "access_denied"})
		return peer, false
	}
	return peer, true
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Status is the body of GET /v1/status.
type Status struct {
	Version string    `json:"version"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Status{Version: s.opt.Version, PID: os.Getpid(), Started: s.started})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.svc.ListUsers(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if users == nil {
		users = []admin.UserInfo{}
	}
	writeJSON(w, http.StatusOK, users)
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var nu admin.NewUser
	if !readJSON(w, r, &nu, maxBody) {
		return
	}
	done(w, s.svc.AddUser(r.Context(), nu))
}

func (s *Server) showUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.svc.ShowUser(r.Context(), r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	done(w, s.svc.DeleteUser(r.Context(), r.PathValue("name")))
}

type passwordBody struct {
	Password string `json:"password"`
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) {
	var b passwordBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	done(w, s.svc.SetPassword(r.Context(), r.PathValue("name"), b.Password))
}

type disabledBody struct {
	Disabled bool `json:"disabled"`
}

func (s *Server) setDisabled(w http.ResponseWriter, r *http.Request) {
	var b disabledBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	done(w, s.svc.SetDisabled(r.Context(), r.PathValue("name"), b.Disabled))
}

type groupsBody struct {
	Groups []string `json:"groups"`
}

func (s *Server) setGroups(w http.ResponseWriter, r *http.Request) {
	var b groupsBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	done(w, s.svc.SetGroups(r.Context(), r.PathValue("name"), b.Groups))
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request) {
	done(w, s.svc.Unlock(r.Context(), r.PathValue("name")))
}

// forceBody is the request of POST /v1/users/{name}/enroll.
type forceBody struct {
	Force bool `json:"force"`
}

// enrollReply carries the pending secret (base64 in JSON). The socket is
// reachable only by root, the daemon's user and control.group, and the
// secret is never logged.
type enrollReply struct {
	Secret []byte `json:"secret"`
}

// totpBody is the request of POST /v1/users/{name}/totp: the code typed
// from the app for the pending token.
type totpBody struct {
	Code  string `json:"code"`
	Force bool   `json:"force"`
}

type codesBody struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func (s *Server) beginEnroll(w http.ResponseWriter, r *http.Request) {
	var b forceBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	secret, err := s.svc.BeginEnroll(r.Context(), r.PathValue("name"), b.Force)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, enrollReply{Secret: secret})
}

func (s *Server) activateTOTP(w http.ResponseWriter, r *http.Request) {
	var b totpBody
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	codes, err := s.svc.ActivateTOTP(r.Context(), r.PathValue("name"), b.Code, b.Force)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, codesBody{RecoveryCodes: codes})
}

func (s *Server) resetMFA(w http.ResponseWriter, r *http.Request) {
	done(w, s.svc.ResetMFA(r.Context(), r.PathValue("name")))
}

func (s *Server) newRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	codes, err := s.svc.NewRecoveryCodes(r.Context(), r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, codesBody{RecoveryCodes: codes})
}

type importResult struct {
	Imported int `json:"imported"`
}

func (s *Server) importUsers(w http.ResponseWriter, r *http.Request) {
	var users []admin.ImportUser
	if !readJSON(w, r, &users, maxImportBody) {
		return
	}
	n, err := s.svc.Import(r.Context(), users)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, importResult{Imported: n})
}

// Trailers of GET /v1/backup: an error after the body started, and the
// byte count the daemon wrote.
const (
	trailerError = "Otpgate-Error"
	trailerCode  = "Otpgate-Error-Code"
	trailerBytes = "Otpgate-Bytes"
)

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", trailerError+", "+trailerCode+", "+trailerBytes)
	cw := &countingWriter{w: w}
	n, err := s.svc.Backup(r.Context(), cw)
	if err != nil && cw.n == 0 {
		w.Header().Del("Trailer")
		writeErr(w, err)
		return
	}
	if err != nil {
		_, body := encodeError(err)
		w.Header().Set(trailerError, body.Error)
		w.Header().Set(trailerCode, body.Code)
		s.log.Error("backup failed after streaming started", "bytes", cw.n, "err", err)
	}
	if cw.n == 0 { // empty but successful: make sure headers go out
		w.WriteHeader(http.StatusOK)
	}
	w.Header().Set(trailerBytes, strconv.FormatInt(n, 10))
}

func readJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "control: bad request body: " + err.Error(), Code: "bad_request"})
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "control: bad request body: trailing data", Code: "bad_request"})
		return false
	}
	return true
}

func done(w http.ResponseWriter, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeErr(w http.ResponseWriter, err error) {
	status, body := encodeError(err)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// lookupGID returns the gid of the admin group; -1 and no error for none.
func lookupGID(group string) (int, error) {
	if group == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("control: group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("control: group %q: bad gid %q", group, g.Gid)
	}
	return gid, nil
}
