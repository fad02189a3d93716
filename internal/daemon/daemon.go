// Package daemon is otpgated: it loads radiusd.toml, opens the store, and
// runs the RADIUS listeners, the control socket for the otpgate CLI and the
// metrics endpoint until its context ends. SIGHUP reloads the config
// (clients, modes, MFA policy); cancellation drains in-flight requests and
// removes the control socket. cmd/otpgated only calls Main.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/radius"
)

// drainTimeout bounds how long shutdown waits for requests in flight.
const drainTimeout = 5 * time.Second

// Main is the otpgated command: flags, -check, -version, then Run until ctx
// ends. It returns the exit code: 0 after a clean shutdown or a good
// -check, 1 on a bad config or a runtime failure, 2 on bad flags.
func Main(ctx context.Context, version string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("otpgated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file (default "+config.DefaultPath+" when it exists, else ./radiusd.toml)")
	check := fs.Bool("check", false, "load and validate the config, print warnings, and exit (0 = valid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: otpgated [-config PATH] [-check] [-version]\n\n"+
			"otpgated is the otpgate RADIUS server (password + TOTP).\n"+
			"SIGHUP reloads the config; SIGTERM drains and exits.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "otpgated: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "otpgated", version)
		return 0
	}
	path, err := config.Find(*cfgFlag)
	if err != nil {
		fmt.Fprintln(stderr, "otpgated:", err)
		return 1
	}
	if *check {
		return Check(path, stdout, stderr)
	}
	tuneGC()
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ready := make(chan struct{})
	err = RunWithOptions(ctx, Options{ConfigPath: path, Log: log, Level: level, AuditStderr: stderr, Version: version, Ready: ready})
	if err != nil {
		select {
		case <-ready:
			log.Error("otpgated stopped", "err", err)
		default:
			log.Error("otpgated could not start", "config", path, "err", err)
		}
		return 1
	}
	return 0
}

// Check loads and validates the config at path without opening the store
// or binding anything: warnings go to stderr, a summary to stdout. It
// returns 0 for a usable config, 1 otherwise.
func Check(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "otpgated:", err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "otpgated: %s: warning: %s\n", path, w)
	}
	if _, err := authOptions(cfg); err != nil {
		fmt.Fprintf(stderr, "otpgated: %s: %v\n", path, err)
		return 1
	}
	if _, err := radiusOptions(cfg); err != nil {
		fmt.Fprintf(stderr, "otpgated: %s: %v\n", path, err)
		return 1
	}
	metrics := cfg.Metrics.Listen
	if metrics == "" {
		metrics = "off"
	}
	fmt.Fprintf(stdout, "%s: OK (%d clients; radius %s; metrics %s; db %s)\n",
		path, len(cfg.Clients), strings.Join(cfg.Radius.Listen, ", "), metrics, cfg.DBPath())
	return 0
}

// Options configures RunWithOptions.
type Options struct {
	ConfigPath string
	// Log is the operational log (nil: discarded).
	Log *slog.Logger
	// Level, when set, is updated from log.level at start and on reload.
	Level *slog.LevelVar
	// AuditStderr is where log.audit = "stderr" writes (nil: os.Stderr).
	AuditStderr io.Writer
	// Version is reported on the control socket and in the startup line.
	Version string
	// Ready, when set, is closed once every listener is bound.
	Ready chan<- struct{}
}

// RunWithOptions runs otpgated until ctx ends, then shuts down cleanly and
// returns nil. SIGHUP sent to the process reloads the config. Any startup
// failure (config, store, a port in use, a live daemon on the control
// socket) is returned after undoing what was started.
func RunWithOptions(ctx context.Context, opt Options) (err error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.AuditStderr == nil {
		opt.AuditStderr = os.Stderr
	}
	// Subscribe before anything else so an early SIGHUP is never fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	n := &node{opt: opt, log: opt.Log}
	defer func() {
		if cerr := n.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := n.build(); err != nil {
		return err
	}
	if err := n.bind(); err != nil {
		return err
	}
	n.serve()
	runErr := n.run(ctx, hup)
	n.shutdown(runErr)
	return runErr
}

// node is one running otpgated: what build makes, what bind binds and what
// serve starts. close undoes it all, in reverse, whether or not it started.
type node struct {
	opt Options
	log *slog.Logger
	cfg *config.Config

	audit  *auditSink
	st     *openedStore
	pws    passwordSource
	svc    *admin.Local
	authn  *auth.Authenticator
	rs     *radius.Server
	cs     *control.Server
	users  *userServices
	closes []func() error // in the order opened; close runs them backwards

	authConns, acctConns []net.PacketConn
	metricsLn, controlLn net.Listener

	wg          sync.WaitGroup
	stopServe   context.CancelFunc
	serveErr    chan error
	stopControl context.CancelFunc
	controlDone chan error
	metricsSrv  *http.Server
}

// onClose registers fn to run when the node closes.
func (n *node) onClose(fn func() error) { n.closes = append(n.closes, fn) }

// close runs what onClose registered, last first, and returns the first
// error (the store's, which may lose the last logins' bookkeeping).
func (n *node) close() error {
	var first error
	for i := len(n.closes) - 1; i >= 0; i-- {
		if err := n.closes[i](); err != nil && first == nil {
			first = err
		}
	}
	n.closes = nil
	return first
}

// build loads the config and makes everything that does not listen: the
// audit log, the store, the password source, the admin operations, the
// Authenticator and the RADIUS server.
func (n *node) build() error {
	cfg, err := config.Load(n.opt.ConfigPath)
	if err != nil {
		return err
	}
	n.cfg = cfg
	if n.opt.Level != nil {
		n.opt.Level.Set(cfg.Log.SlogLevel())
	}
	for _, w := range cfg.Warnings {
		n.log.Warn("config warning", "config", cfg.Path, "warning", w)
	}
	aopt, err := authOptions(cfg)
	if err != nil {
		return err
	}
	ropt, err := radiusOptions(cfg)
	if err != nil {
		return err
	}
	if err := checkDirs(cfg); err != nil {
		return err
	}
	if n.audit, err = newAuditSink(cfg.Log.Audit, n.opt.AuditStderr, n.log); err != nil {
		return err
	}
	n.onClose(func() error { n.audit.Close(); return nil })
	if n.st, err = openStore(cfg, n.log); err != nil {
		return err
	}
	n.onClose(func() error {
		if err := n.st.Close(); err != nil {
			return fmt.Errorf("close store: %w", err)
		}
		return nil
	})
	if n.pws, err = newPasswordSource(cfg, n.log); err != nil {
		return err
	}
	n.onClose(func() error { n.pws.close(); return nil })
	aopt.Passwords = n.pws.checker
	// The admin operations exist before auth: first-login enrollment runs
	// through them (and through the link issuer of [web]).
	n.svc = admin.NewLocal(n.st.Store, aopt.PasswordHashParams, cfg.Issuer) // the cost auth's dummy hash has
	n.svc.SetPasswordSource(cfg.Password.Source)
	if cfg.Auth.EnrollAtLogin {
		aopt.EnrollAtLogin, aopt.Enroller = true, n.svc
		aopt.EnrollLink = loginLinks(cfg, n.svc)
	}
	if shared, ok := n.st.Store.(auth.StateStore); ok {
		aopt.States = shared // PostgreSQL: a NAS failing over mid-challenge finishes on another node
	}
	if shared, ok := n.st.Store.(auth.PasswordBackoffStore); ok {
		aopt.PasswordBackoff = shared // PostgreSQL: guesses spread over the nodes add up
	}
	if n.authn, err = auth.New(aopt, n.st.Store, n.log); err != nil {
		return err
	}
	ropt.Ready = n.st.ready
	n.rs, err = radius.New(ropt, n.authn, n.log.With("component", "radius"), newAuditLogger(n.audit))
	return err
}

// bind binds every socket before anything is served, so a port in use or a
// live daemon on the control socket fails the start cleanly.
func (n *node) bind() error {
	cfg := n.cfg
	n.onClose(func() error {
		for _, pc := range append(n.authConns, n.acctConns...) {
			pc.Close()
		}
		return nil
	})
	for _, addr := range cfg.Radius.Listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("radius: listen %s: %w", addr, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(1 << 20) // absorb bursts; capped by net.core.rmem_max
		}
		n.authConns = append(n.authConns, pc)
	}
	for _, addr := range cfg.Radius.AcctListen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("radius accounting: listen %s: %w", addr, err)
		}
		n.acctConns = append(n.acctConns, pc)
	}
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics: listen %s: %w", cfg.Metrics.Listen, err)
		}
		n.metricsLn = ln
		n.onClose(func() error {
			if n.metricsSrv == nil { // once served, the server closes it
				ln.Close()
			}
			return nil
		})
	}
	n.cs = control.NewServer(n.svc, control.ServerOptions{Group: cfg.Control.Group, Version: n.opt.Version}, n.log)
	ln, err := n.cs.Listen(cfg.SocketPath())
	if err != nil {
		return err
	}
	n.controlLn = ln
	n.onClose(func() error {
		if n.controlDone == nil { // once served, ServeListener closes it
			ln.Close()
		}
		return nil
	})
	if n.users, err = startUserServices(cfg, n.svc, n.log); err != nil {
		return err
	}
	n.onClose(func() error { n.users.stop(); return nil })
	return nil
}

// serve starts the control socket, the metrics endpoint and the RADIUS
// listeners, then says so in one line and closes Options.Ready.
func (n *node) serve() {
	cfg, log := n.cfg, n.log
	controlCtx, stopControl := context.WithCancel(context.Background())
	n.stopControl = stopControl
	n.onClose(func() error { stopControl(); return nil })
	n.controlDone = make(chan error, 1)
	go func() { n.controlDone <- n.cs.ServeListener(controlCtx, n.controlLn) }()

	metricsAddr := "off"
	if n.metricsLn != nil {
		metricsAddr = cfg.Metrics.Listen
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler(n.rs, n.st.Store, n.pws.collectors, log))
		n.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		n.wg.Go(func() {
			if err := n.metricsSrv.Serve(n.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		})
	}

	serveCtx, stopServe := context.WithCancel(context.Background())
	n.stopServe = stopServe
	n.onClose(func() error { stopServe(); return nil })
	n.serveErr = make(chan error, len(n.authConns)+len(n.acctConns))
	listen := func(pcs []net.PacketConn, serve func(context.Context, net.PacketConn) error) (addrs []string) {
		for _, pc := range pcs {
			addrs = append(addrs, pc.LocalAddr().String())
			n.wg.Go(func() {
				if err := serve(serveCtx, pc); err != nil && !errors.Is(err, radius.ErrServerClosed) {
					n.serveErr <- err
				}
			})
		}
		return addrs
	}
	addrs := listen(n.authConns, n.rs.Serve)
	acctAddrs := listen(n.acctConns, n.rs.ServeAccounting)
	log.Info("otpgated started", "version", n.opt.Version, "config", cfg.Path, "radius", addrs,
		"clients", len(cfg.Clients), "db", cfg.DBPath(), "control", cfg.SocketPath(), "metrics", metricsAddr,
		"mode", cfg.Auth.Mode, "mfa", cfg.Auth.MFA, "password_source", cfg.Password.Source, "accounting", acctAddrs)
	if n.opt.Ready != nil {
		close(n.opt.Ready)
	}
}

// run waits until ctx ends or a listener fails, reloading the config on
// every SIGHUP; it returns the failure, or nil.
func (n *node) run(ctx context.Context, hup <-chan os.Signal) error {
	for {
		select {
		case <-ctx.Done():
			n.log.Info("otpgated shutting down", "cause", context.Cause(ctx))
			return nil
		case err := <-n.serveErr:
			n.log.Error("radius listener failed; shutting down", "err", err)
			return err
		case err := <-n.controlDone:
			n.controlDone <- err // for shutdown
			n.log.Error("control socket failed; shutting down", "err", err)
			return fmt.Errorf("control socket: %w", err)
		case <-hup:
			if next, ok := reload(n.cfg, n.opt, n.log, n.rs, n.authn, n.audit); ok {
				n.cfg = next
			}
		}
	}
}

// shutdown stops reading, drains the requests in flight, then stops the
// control socket and the metrics endpoint; close does the rest.
func (n *node) shutdown(runErr error) {
	n.stopServe()
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	if err := n.rs.Shutdown(dctx); err != nil {
		n.log.Warn("radius drain incomplete", "err", err)
	}
	cancel()
	for _, pc := range append(n.authConns, n.acctConns...) {
		pc.Close()
	}
	n.authConns, n.acctConns = nil, nil
	n.stopControl()
	if err := <-n.controlDone; err != nil && runErr == nil {
		n.log.Warn("control socket shutdown", "err", err)
	}
	if n.metricsSrv != nil {
		mctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.metricsSrv.Shutdown(mctx)
		cancel()
	}
	n.wg.Wait()
	n.log.Info("otpgated stopped")
}

// reload loads the config again and applies what can change at run time.
// On any error the running config stays and the error is logged.
func reload(cur *config.Config, opt Options, log *slog.Logger, rs *radius.Server, authn *auth.Authenticator, audit *auditSink) (*config.Config, bool) {
	log.Info("SIGHUP: reloading config", "config", opt.ConfigPath)
	next, err := config.Load(opt.ConfigPath)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return nil, false
	}
	aopt, err := authOptions(next)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return nil, false
	}
	ropt, err := radiusOptions(next)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return nil, false
	}
	if err := rs.Reload(ropt); err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return nil, false
	}
	authn.SetPolicy(aopt.Policy)
	if opt.Level != nil {
		opt.Level.Set(next.Log.SlogLevel())
	}
	if err := audit.Reopen(next.Log.Audit); err != nil {
		log.Error("audit log: reopen failed; still writing to the old one", "err", err)
		next.Log.Audit = cur.Log.Audit // what runs, so the next diff is right
	}
	for _, w := range next.Warnings {
		log.Warn("config warning", "config", next.Path, "warning", w)
	}
	applied, restart := diffConfig(cur, next)
	if len(applied) == 0 {
		applied = []string{"none"}
	}
	log.Info("config reloaded", "changes", applied)
	if len(restart) > 0 {
		log.Warn("config changes that need a restart were not applied", "keys", restart)
	}
	return next, true
}
