// Package web serves the one-time enrollment link page from otpgated: a
// user opens the link an admin issued (otpgate enroll NAME --link), adds
// the account to an authenticator app from the QR code or the key, and
// types a code, which activates the token and shows the recovery codes
// once. Server-side templates only: no JavaScript, no external assets, the
// stylesheet inline under a CSP hash. The token in the URL is the only
// input; every dead link (unknown, used, expired, killed) gets one page.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
)

// Enroller is the enrollment behind the links; *admin.Local implements it.
type Enroller interface {
	OpenEnrollLink(ctx context.Context, token string) (admin.LinkEnrollment, error)
	RedeemEnrollLink(ctx context.Context, token, code string) ([]string, error)
	PruneEnrollLinks(ctx context.Context) (int, error)
}

var _ Enroller = (*admin.Local)(nil)

// Options configures the page ([web] in radiusd.toml).
type Options struct {
	Listen    string // host:port
	TLSCert   string // PEM files; both empty: plain HTTP (loopback only, checked by config)
	TLSKey    string
	PublicURL string // what links start with
	Log       *slog.Logger
}

// Rate limits. A link allows admin.MaxLinkAttempts wrong codes in all;
// these bound how fast anyone can knock on the page at all.
const (
	globalRate       = 10 // requests per second, all links together
	globalBurst      = 40
	perTokenInterval = time.Second // between two codes for one link
	maxTokenLen      = 64
	maxFormBody      = 4 << 10
	pruneEvery       = time.Hour
)

// Server serves the enrollment link page.
type Server struct {
	enr    Enroller
	opt    Options
	log    *slog.Logger
	global *bucket
	now    func() time.Time
	tls    *tls.Config // from TLSCert and TLSKey, loaded by Listen; nil: plain HTTP

	mu       sync.Mutex
	lastCode map[[32]byte]time.Time // per link (hash of the token): when its last code came
}

// New returns the page server for enr.
func New(enr Enroller, opt Options) *Server {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{enr: enr, opt: opt, log: log.With("component", "web"),
		global: newBucket(globalRate, globalBurst, time.Now), now: time.Now, lastCode: map[[32]byte]time.Time{}}
}

// LinkURL is the address of the page for token under publicURL.
func LinkURL(publicURL, token string) string {
	return strings.TrimRight(publicURL, "/") + "/enroll/" + token
}

// Link is a one-time enrollment link for a user.
type Link struct {
	User    string    `json:"user"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// IssueLink makes a one-time enrollment link for user name through li
// (*admin.Local in otpgated, the control socket client in the CLI), valid
// for ttl (0: admin.DefaultLinkTTL), replacing the user's earlier link.
// The user must exist and have no token. It is the one way links are
// made: the CLI uses it, and so can the daemon (say, to offer a link in a
// first-login challenge).
func IssueLink(ctx context.Context, li admin.LinkIssuer, publicURL, name string, ttl time.Duration) (Link, error) {
	if publicURL == "" {
		return Link{}, errors.New("web: no [web] public_url configured: links need the address of the page")
	}
	l, err := li.IssueEnrollLink(ctx, name, ttl)
	if err != nil {
		return Link{}, err
	}
	return Link{User: l.User, URL: LinkURL(publicURL, l.Token), Expires: l.Expires}, nil
}

// Listen loads the TLS key pair, when configured, and binds the page's
// address: otpgated calls it while it starts, so an unusable tls_cert or
// tls_key fails the start instead of leaving it without the page.
func (s *Server) Listen() (net.Listener, error) {
	if err := s.loadTLS(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", s.opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: listen %s: %w", s.opt.Listen, err)
	}
	return ln, nil
}

// loadTLS reads the key pair once. Its errors name the files; those of
// tls.LoadX509KeyPair hold no key material.
func (s *Server) loadTLS() error {
	if s.opt.TLSCert == "" || s.tls != nil {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.opt.TLSCert, s.opt.TLSKey)
	if err != nil {
		return fmt.Errorf("web: tls_cert %s, tls_key %s: %w", s.opt.TLSCert, s.opt.TLSKey, err)
	}
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	return nil
}

// Serve serves on ln (with TLS when configured) until ctx ends, pruning
// expired links now and then.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.loadTLS(); err != nil { // Listen has, unless ln came from elsewhere
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:         s.tls,
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	s.prune(ctx)
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("web: serve: %w", err)
		case <-tick.C:
			s.prune(ctx)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
			<-errc
			return nil
		}
	}
}

func (s *Server) prune(ctx context.Context) {
	n, err := s.enr.PruneEnrollLinks(ctx)
	switch {
	case err != nil:
		s.log.Warn("prune expired enrollment links", "err", err)
	case n > 0:
		s.log.Info("expired enrollment links removed", "count", n)
	}
	s.mu.Lock()
	for k, t := range s.lastCode {
		if s.now().Sub(t) > perTokenInterval {
			delete(s.lastCode, k)
		}
	}
	s.mu.Unlock()
}

// Handler is the page's routes behind the security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /enroll/{token}", s.show)
	mux.HandleFunc("POST /enroll/{token}", s.submit)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, http.StatusNotFound, pageInvalid, nil)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !s.global.take() {
			h.Set("Retry-After", "5")
			s.render(w, http.StatusTooManyRequests, pageBusy, nil)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// enrollView is what the enrollment page shows.
type enrollView struct {
	User, Issuer string
	QR           template.URL // data: URI of the PNG
	OTPAuth      template.URL // otpauth:// URI, to open the app on a phone
	Key          string       // in groups of four
	Kind         string       // "time-based, 6 digits, every 30 seconds"
	Digits       int
	Expires      string
	Error        string
}

func (s *Server) show(w http.ResponseWriter, r *http.Request) {
	s.enrollPage(w, r, r.PathValue("token"), "")
}

func (s *Server) enrollPage(w http.ResponseWriter, r *http.Request, token, msg string) {
	if len(token) > maxTokenLen {
		s.render(w, http.StatusNotFound, pageInvalid, nil)
		return
	}
	le, err := s.enr.OpenEnrollLink(r.Context(), token)
	if err != nil {
		s.failed(w, err)
		return
	}
	uri, err := enroll.URI(le.Issuer, le.User, le.Secret, le.Params)
	if err != nil {
		s.failed(w, err)
		return
	}
	var png bytes.Buffer
	if err := enroll.WritePNG(&png, uri, 0); err != nil {
		s.failed(w, err)
		return
	}
	status := http.StatusOK
	if msg != "" {
		status = http.StatusUnprocessableEntity
	}
	s.render(w, status, pageEnroll, enrollView{
		User: le.User, Issuer: le.Issuer,
		QR:      template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png.Bytes())),
		OTPAuth: template.URL(uri),
		Key:     enroll.FormatSecret(le.Secret),
		Kind:    fmt.Sprintf("time-based, %d digits, every %d seconds", le.Params.Digits(), le.Params.Period()),
		Digits:  le.Params.Digits(),
		Expires: le.Expires.UTC().Format("2 January 2006, 15:04 UTC"),
		Error:   msg,
	})
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if len(token) > maxTokenLen {
		s.render(w, http.StatusNotFound, pageInvalid, nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		s.render(w, http.StatusBadRequest, pageInvalid, nil)
		return
	}
	if !s.codeAllowed(token) {
		w.Header().Set("Retry-After", "1")
		s.render(w, http.StatusTooManyRequests, pageBusy, nil)
		return
	}
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '-' {
			return -1
		}
		return r
	}, r.PostForm.Get("code"))
	codes, err := s.enr.RedeemEnrollLink(r.Context(), token, code)
	switch {
	case err == nil:
		s.log.Info("enrollment link used: token active")
		s.render(w, http.StatusOK, pageDone, struct{ Codes []string }{codes})
	case errors.Is(err, admin.ErrWrongCode):
		msg := "That code is not right. Check that the phone's clock is set automatically, then type the code the app shows now."
		if _, left, ok := strings.Cut(err.Error(), "("); ok {
			msg += " (" + left
		}
		s.enrollPage(w, r, token, msg)
	case errors.Is(err, admin.ErrLinkRestart):
		s.enrollPage(w, r, token, "The enrollment was restarted elsewhere: add this new key to your app (remove the old entry) and type its code.")
	default:
		s.failed(w, err)
	}
}

// codeAllowed lets one code per perTokenInterval through for a link.
func (s *Server) codeAllowed(token string) bool {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if last, ok := s.lastCode[k]; ok && now.Sub(last) < perTokenInterval {
		return false
	}
	if len(s.lastCode) > 100000 {
		clear(s.lastCode) // bounded; only slows nobody for a second
	}
	s.lastCode[k] = now
	return true
}

// failed shows the one page for every dead link; other errors are logged
// and shown as a plain failure, without detail.
func (s *Server) failed(w http.ResponseWriter, err error) {
	if errors.Is(err, admin.ErrLinkInvalid) {
		s.render(w, http.StatusNotFound, pageInvalid, nil)
		return
	}
	s.log.Error("enrollment page failed", "err", err)
	s.render(w, http.StatusInternalServerError, pageBroken, nil)
}

func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, page, data); err != nil {
		s.log.Error("render enrollment page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// bucket is a token bucket: rate tokens a second, at most burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(rate, burst float64, now func() time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now(), now: now}
}

func (b *bucket) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
