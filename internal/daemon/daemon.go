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
	cfgFlag := fs.String("config", "", "config file (default ./radiusd.toml, else "+config.DefaultPath+")")
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
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.AuditStderr == nil {
		opt.AuditStderr = os.Stderr
	}
	// Subscribe before anything else so an early SIGHUP is never fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, err := config.Load(opt.ConfigPath)
	if err != nil {
		return err
	}
	if opt.Level != nil {
		opt.Level.Set(cfg.Log.SlogLevel())
	}
	for _, w := range cfg.Warnings {
		log.Warn("config warning", "config", cfg.Path, "warning", w)
	}
	aopt, err := authOptions(cfg)
	if err != nil {
		return err
	}
	ropt, err := radiusOptions(cfg)
	if err != nil {
		return err
	}

	audit, err := newAuditSink(cfg.Log.Audit, opt.AuditStderr, log)
	if err != nil {
		return err
	}
	defer audit.Close()
	auditLog := newAuditLogger(audit)

	st, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()

	pws, err := newPasswordSource(cfg, log)
	if err != nil {
		return err
	}
	defer pws.close()
	aopt.Passwords = pws.checker
	if shared, ok := st.Store.(auth.StateStore); ok {
		aopt.States = shared // PostgreSQL: a NAS failing over mid-challenge finishes on another node
	}
	authn, err := auth.New(aopt, st.Store, log)
	if err != nil {
		return err
	}
	ropt.Ready = st.ready
	rs, err := radius.New(ropt, authn, log.With("component", "radius"), auditLog)
	if err != nil {
		return err
	}

	// Bind everything before serving anything, so a port in use or a live
	// daemon fails the start cleanly.
	var pcs []net.PacketConn
	defer func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	for _, addr := range cfg.Radius.Listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("radius: listen %s: %w", addr, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(1 << 20)
		}
		pcs = append(pcs, pc)
	}
	// Accounting sockets: pcs[nAuth:].
	nAuth := len(pcs)
	for _, addr := range cfg.Radius.AcctListen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("radius accounting: listen %s: %w", addr, err)
		}
		pcs = append(pcs, pc)
	}

	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics: listen %s: %w", cfg.Metrics.Listen, err)
		}
	}
	defer func() {
		if metricsLn != nil {
			metricsLn.Close()
		}
	}()

	svc := admin.NewLocal(st.Store, aopt.PasswordHashParams, cfg.Issuer) // the cost auth's dummy hash has
	svc.SetPasswordSource(cfg.Password.Source)
	cs := control.NewServer(svc, control.ServerOptions{Group: cfg.Control.Group, Version: opt.Version}, log)
	controlLn, err := cs.Listen(cfg.SocketPath())
	if err != nil {
		return err
	}
	users, err := startUserServices(cfg, svc, log)
	if err != nil {
		controlLn.Close()
		return err
	}
	defer users.stop()

	// Serve.
	var wg sync.WaitGroup
	controlCtx, stopControl := context.WithCancel(context.Background())
	defer stopControl()
	controlDone := make(chan error, 1)
	go func() { controlDone <- cs.ServeListener(controlCtx, controlLn) }()

	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler(rs, st.Store, pws.collectors, log))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		ln := metricsLn
		metricsLn = nil // owned by metricsSrv now
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}

	serveCtx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	serveErr := make(chan error, len(pcs))
	var addrs, acctAddrs []string
	for i, pc := range pcs {
		serve := rs.Serve
		if i < nAuth {
			addrs = append(addrs, pc.LocalAddr().String())
		} else {
			serve = rs.ServeAccounting
			acctAddrs = append(acctAddrs, pc.LocalAddr().String())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(serveCtx, pc); err != nil && !errors.Is(err, radius.ErrServerClosed) {
				serveErr <- err
			}
		}()
	}
	metricsAddr := "off"
	if metricsSrv != nil {
		metricsAddr = cfg.Metrics.Listen
	}
	log.Info("otpgated started", "version", opt.Version, "config", cfg.Path, "radius", addrs,
		"clients", len(cfg.Clients), "db", cfg.DBPath(), "control", cfg.SocketPath(), "metrics", metricsAddr,
		"mode", cfg.Auth.Mode, "mfa", cfg.Auth.MFA, "password_source", cfg.Password.Source, "accounting", acctAddrs)
	if opt.Ready != nil {
		close(opt.Ready)
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("otpgated shutting down", "cause", context.Cause(ctx))
			break loop
		case err := <-serveErr:
			runErr = err
			log.Error("radius listener failed; shutting down", "err", err)
			break loop
		case err := <-controlDone:
			controlDone <- err // for the shutdown below
			runErr = fmt.Errorf("control socket: %w", err)
			log.Error("control socket failed; shutting down", "err", err)
			break loop
		case <-hup:
			if next, ok := reload(cfg, opt, log, rs, authn, audit); ok {
				cfg = next
			}
		}
	}

	// Shutdown: stop reading, drain, then close the rest.
	stopServe()
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	if err := rs.Shutdown(dctx); err != nil {
		log.Warn("radius drain incomplete", "err", err)
	}
	cancel()
	for _, pc := range pcs {
		pc.Close()
	}
	pcs = nil
	stopControl()
	if err := <-controlDone; err != nil && runErr == nil {
		log.Warn("control socket shutdown", "err", err)
	}
	if metricsSrv != nil {
		mctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = metricsSrv.Shutdown(mctx)
		cancel()
	}
	wg.Wait()
	log.Info("otpgated stopped")
	return runErr
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
