package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/safefile"
	"github.com/otpgate/otpgate/store"
)

// The self-enrollment socket is a second socket, separate from the admin
// one, that every local user may connect to (mode 0666). It serves exactly
// one thing: a user without a token enrolls themselves. Who they are is the
// peer's uid (SO_PEERCRED) turned into a name with os/user, never anything
// the request says. A second socket, rather than one socket with per-route
// rights, keeps the admin socket as it is (owner or group only, peers
// refused at accept) and gives the public one its own route table, so no
// admin route can be reached through it by mistake, and its own connection
// bounds, so local users can't use up the admin socket's.

// DefaultSelfSocket is where the otpgate CLI looks for the self-enrollment
// socket when it can't read radiusd.toml (an ordinary user can't).
const DefaultSelfSocket = "/run/otpgate/enroll.sock"

// Connection bounds of the self-enrollment socket.
const (
	selfMaxConns       = 32
	selfMaxConnsPerUID = 4
)

// Self-enrollment errors, sent with their own codes.
var (
	// ErrSelfUnknownUser: the caller's login name is not an otpgate user.
	ErrSelfUnknownUser = errors.New("control: you are not an otpgate user")
	// ErrSelfDisabled: the caller's otpgate user is disabled.
	ErrSelfDisabled = errors.New("control: your otpgate user is disabled")
)

// SelfStatus is the body of GET /v1/self: who the daemon thinks the
// caller is.
type SelfStatus struct {
	User          string `json:"user"`
	Issuer        string `json:"issuer"`
	Enrolled      bool   `json:"enrolled"`
	PendingEnroll bool   `json:"pending_enroll"`
}

// SelfEnrollment is the body of POST /v1/self/enroll: the pending secret
// to show the caller (their own; only they receive it).
type SelfEnrollment struct {
	User   string `json:"user"`
	Issuer string `json:"issuer"`
	Secret []byte `json:"secret"`
}

// SelfServer serves the self-enrollment socket.
type SelfServer struct {
	svc    admin.Service
	issuer string
	log    *slog.Logger
	// lookup maps a uid to a login name; tests replace it.
	lookup func(uid uint32) (string, error)
}

// NewSelfServer returns the self-enrollment server on svc; issuer is shown
// in the user's app.
func NewSelfServer(svc admin.Service, issuer string, log *slog.Logger) *SelfServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SelfServer{svc: svc, issuer: issuer, log: log.With("component", "self-enroll"), lookup: lookupUsername}
}

func lookupUsername(uid uint32) (string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", fmt.Errorf("control: uid %d has no user name: %w", uid, err)
	}
	return u.Username, nil
}

// selfRoutes is the whole API of the self-enrollment socket.
func (s *SelfServer) selfRoutes() []route {
	return []route{
		{"GET", "/v1/self", s.status},
		{"POST", "/v1/self/enroll", s.begin},
		{"POST", "/v1/self/totp", s.activate},
	}
}

// Handler is the self-enrollment API behind its guard.
func (s *SelfServer) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.selfRoutes() {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "control: the self-enrollment socket serves only `otpgate enroll` (no NAME); " + r.Method + " " + r.URL.Path + " is not here", Code: "access_denied"})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := checkRequest(w, r, s.log)
		if !ok {
			return
		}
		name, err := s.lookup(peer.Uid)
		if err != nil {
			s.log.Warn("self-enrollment refused: no user name for uid", "uid", peer.Uid)
			writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error(), Code: "access_denied"})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), selfUserKey{}, name))
		mux.ServeHTTP(w, r)
	})
}

type selfUserKey struct{}

func selfUser(r *http.Request) string { return r.Context().Value(selfUserKey{}).(string) }

func (s *SelfServer) status(w http.ResponseWriter, r *http.Request) {
	name := selfUser(r)
	u, err := s.svc.ShowUser(r.Context(), name)
	if err != nil {
		s.writeSelfErr(w, name, err)
		return
	}
	writeJSON(w, http.StatusOK, SelfStatus{User: name, Issuer: s.issuer, Enrolled: u.Enrolled, PendingEnroll: u.PendingEnroll})
}

func (s *SelfServer) begin(w http.ResponseWriter, r *http.Request) {
	var b struct{}
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	name := selfUser(r)
	u, err := s.svc.ShowUser(r.Context(), name)
	switch {
	case err != nil:
		s.writeSelfErr(w, name, err)
		return
	case u.Disabled:
		s.writeSelfErr(w, name, ErrSelfDisabled)
		return
	}
	secret, err := s.svc.BeginEnroll(r.Context(), name, false) // never replaces a token
	if err != nil {
		s.writeSelfErr(w, name, err)
		return
	}
	s.log.Info("self-enrollment begun", "user", name)
	writeJSON(w, http.StatusOK, SelfEnrollment{User: name, Issuer: s.issuer, Secret: secret})
}

func (s *SelfServer) activate(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &b, maxBody) {
		return
	}
	name := selfUser(r)
	codes, err := s.svc.ActivateTOTP(r.Context(), name, b.Code, false)
	if err != nil {
		s.writeSelfErr(w, name, err)
		return
	}
	s.log.Info("self-enrollment finished: token active", "user", name)
	writeJSON(w, http.StatusOK, codesBody{RecoveryCodes: codes})
}

// writeSelfErr says what a user (not an admin) can do about err.
func (s *SelfServer) writeSelfErr(w http.ResponseWriter, name string, err error) {
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Code: "self_unknown_user",
			Error: fmt.Sprintf("%q is not an otpgate user; ask your administrator to add you (otpgate user add %s)", name, name)})
	case errors.Is(err, ErrSelfDisabled):
		writeJSON(w, http.StatusForbidden, errorBody{Code: "self_disabled",
			Error: fmt.Sprintf("the otpgate user %q is disabled; ask your administrator", name)})
	case errors.Is(err, admin.ErrAlreadyEnrolled):
		writeJSON(w, http.StatusConflict, errorBody{Code: "already_enrolled",
			Error: fmt.Sprintf("%q already has an active token; to replace it (a lost or new phone) ask your administrator to reset it (otpgate reset %s)", name, name)})
	default:
		writeErr(w, err)
	}
}

// ListenSelf creates the self-enrollment socket at path, mode 0666, bound
// under a temporary name and renamed into place. Its directory must exist
// or is created 0755 (others must be able to enter it), and nobody but root
// and otpgated's user may be able to change it or a directory above it
// (safefile.SecureDir, as for the admin socket): not even a sticky /tmp,
// where while otpgated is down another user could bind the name and be
// the daemon users enroll with, choosing their key and seeing their codes.
func (s *SelfServer) ListenSelf(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control: self-enrollment socket: %w", err)
	}
	if err := safefile.SecureDir(dir, os.Geteuid()); err != nil {
		return nil, fmt.Errorf("control: self-enrollment socket %s: %w (use a directory only root and otpgated's user can change, such as /run/otpgate)", path, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("control: self-enrollment socket: %w", err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		s.log.Warn("self-enrollment socket directory is not searchable by others: users can't reach the socket", "dir", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// Everyone may connect: the peer's uid decides what it may do.
	return bindSocket(path, 0o666, -1)
}

// ServeListener serves on ln until ctx is done. Every peer with
// credentials is let in, at most selfMaxConns at once and
// selfMaxConnsPerUID per uid.
func (s *SelfServer) ServeListener(ctx context.Context, ln net.Listener) error {
	pl := newPeerListener(ln, func(unix.Ucred) bool { return true }, selfMaxConns, newRefusalLog(s.log, ""))
	srv := newHTTPServer(s.Handler(), s.log)
	srv.ReadTimeout = 30 * time.Second // any local user: a slow body must not hold a slot
	return serve(ctx, &uidLimitListener{peerListener: pl, per: selfMaxConnsPerUID, open: map[uint32]int{}}, srv, "control: self-enrollment")
}

// uidLimitListener closes connections of a uid that already holds per.
type uidLimitListener struct {
	*peerListener
	per  int
	mu   sync.Mutex
	open map[uint32]int
}

func (l *uidLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.peerListener.Accept()
		if err != nil {
			return nil, err
		}
		pc := c.(*peerConn)
		uid := pc.cred.Uid
		l.mu.Lock()
		if l.open[uid] >= l.per {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[uid]++
		l.mu.Unlock()
		release := pc.release
		pc.release = func() {
			l.mu.Lock()
			if l.open[uid]--; l.open[uid] <= 0 {
				delete(l.open, uid)
			}
			l.mu.Unlock()
			release()
		}
		return pc, nil
	}
}

// AdminRoutes lists the admin socket's endpoints as "METHOD /path" (with
// {name} for a user): for tests that prove, with real peers, that an
// ordinary user reaches none of them.
func AdminRoutes() []string {
	var out []string
	for _, rt := range (&Server{}).routes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}
