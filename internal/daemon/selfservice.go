package daemon

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/web"
)

// userServices is what otpgated serves to users rather than admins: the
// self-enrollment socket (control.enroll_socket) and the enrollment link
// page ([web]). Either may be off. Their failures are logged and do not
// stop the RADIUS service.
type userServices struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startUserServices binds both listeners (so a bad path, a port in use or
// an unusable [web] TLS key pair fails the start) and serves them until
// stop.
func startUserServices(cfg *config.Config, svc *admin.Local, log *slog.Logger) (*userServices, error) {
	ctx, cancel := context.WithCancel(context.Background())
	u := &userServices{cancel: cancel}
	var selfLn, webLn net.Listener
	fail := func(err error) (*userServices, error) {
		cancel()
		for _, ln := range []net.Listener{selfLn, webLn} {
			if ln != nil {
				ln.Close()
			}
		}
		return nil, err
	}
	var self *control.SelfServer
	if p := cfg.Control.EnrollSocket; p != "" {
		self = control.NewSelfServer(svc, cfg.Issuer, log)
		ln, err := self.ListenSelf(p)
		if err != nil {
			return fail(err)
		}
		selfLn = ln
	}
	var page *web.Server
	if cfg.Web.Listen != "" {
		page = web.New(svc, web.Options{Listen: cfg.Web.Listen, TLSCert: cfg.Web.TLSCert, TLSKey: cfg.Web.TLSKey,
			PublicURL: cfg.Web.PublicURL, Log: log})
		ln, err := page.Listen()
		if err != nil {
			return fail(err)
		}
		webLn = ln
	}
	if self != nil {
		u.wg.Go(func() {
			if err := self.ServeListener(ctx, selfLn); err != nil {
				log.Error("self-enrollment socket stopped", "err", err)
			}
		})
		log.Info("self-enrollment socket", "path", cfg.Control.EnrollSocket)
	}
	if page != nil {
		u.wg.Go(func() {
			if err := page.Serve(ctx, webLn); err != nil {
				log.Error("enrollment link page stopped", "err", err)
			}
		})
		log.Info("enrollment link page", "listen", cfg.Web.Listen, "public_url", cfg.Web.PublicURL, "tls", cfg.Web.TLS())
	}
	return u, nil
}

// stop ends both services and waits for them.
func (u *userServices) stop() {
	u.cancel()
	u.wg.Wait()
}

// loginLinkTTL is the life of a link a first-login challenge offers: long
// enough to finish on the page if the login times out, short because the
// Reply-Message carrying it crosses the network in clear.
const loginLinkTTL = time.Hour

// loginLinks is what a first-login challenge offers instead of the key
// when [web] is set: a one-time link, issued the way the CLI issues them
// (nil without [web]).
func loginLinks(cfg *config.Config, svc *admin.Local) func(ctx context.Context, name string) (string, error) {
	if cfg.Web.Listen == "" {
		return nil
	}
	publicURL := cfg.Web.PublicURL
	return func(ctx context.Context, name string) (string, error) {
		l, err := web.IssueLink(ctx, svc, publicURL, name, loginLinkTTL)
		if err != nil {
			return "", err
		}
		return l.URL, nil
	}
}
