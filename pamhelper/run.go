// Package pamhelper is otpgate-pam, the helper that pam_exec runs:
//
//	auth required pam_exec.so expose_authtok quiet /usr/sbin/otpgate-pam
//
// It reads PAM_USER, PAM_TYPE and PAM_RHOST from the environment (nothing
// else), the authtok from stdin (read to EOF, bounded, one trailing NUL
// dropped), and asks otpgated over RADIUS (PAP, Message-Authenticator on the
// request, Response Authenticator and Message-Authenticator verified on the
// answer) with retransmits and failover across several servers. It exits
// ExitAccept only on Access-Accept.
//
// The package stays small on purpose: no store, no server code (a test checks
// the dependency list of cmd/otpgate-pam).
package pamhelper

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Exit codes. pam_exec maps every non-zero code to PAM_SYSTEM_ERR, so the
// distinction only shows in logs and tests.
const (
	ExitAccept = 0 // the server sent Access-Accept
	ExitReject = 1 // Access-Reject, Access-Challenge, or input that cannot be right (empty, too long)
	ExitError  = 2 // no server answered, bad config, bad environment, PAM_TYPE other than auth
)

// Options are the parts of Run's surroundings tests replace.
type Options struct {
	Args  []string  // command-line arguments without the program name
	Env   []string  // os.Environ()
	Stdin io.Reader // the authtok from pam_exec expose_authtok
	Euid  int       // os.Geteuid(): as root the config must be owned by root
	Log   *slog.Logger
	// StdinTimeout bounds the wait for the authtok (0: DefaultStdinTimeout).
	StdinTimeout time.Duration
	// Version is printed by -version ("" prints "dev").
	Version string
	// Stdout gets the -version line, Stderr the -h usage (nil: discarded).
	Stdout, Stderr io.Writer
}

const usageLine = "usage: otpgate-pam [-config PATH] [-version]"

// Run is the whole of otpgate-pam; main only wires the process into Options.
func Run(ctx context.Context, o Options) int {
	log := o.Log
	stdout, stderr := o.Stdout, o.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	fs := flag.NewFlagSet("otpgate-pam", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", DefaultConfigPath, "pam.toml to read")
	showVersion := fs.Bool("version", false, "print the version and exit (not on a PAM stack line)")
	if err := fs.Parse(o.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Exit non-zero: under pam_exec any 0 is a successful login.
			fmt.Fprintf(stderr, "%s\n\n", usageLine)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return ExitError
		}
		log.Error("bad command line; "+usageLine, "err", err)
		return ExitError
	}
	if fs.NArg() > 0 {
		log.Error("unexpected arguments; "+usageLine, "args", fs.Args())
		return ExitError
	}
	if *showVersion {
		if _, underPAM := lookupEnv(o.Env, "PAM_TYPE"); underPAM {
			// pam_exec treats exit 0 as success: "otpgate-pam -version" on
			// a stack line must not let every login through.
			log.Error("-version given under pam_exec (PAM_TYPE is set); failing closed")
			return ExitError
		}
		version := o.Version
		if version == "" {
			version = "dev"
		}
		fmt.Fprintln(stdout, "otpgate-pam", version)
		return ExitAccept
	}

	pamType, err := envValue(o.Env, "PAM_TYPE")
	if err != nil {
		log.Error("bad environment", "err", err)
		return ExitError
	}
	if pamType != "auth" {
		// pam_exec passes the authtok only for "auth"; anything else means the
		// PAM file is wrong. Failing closed makes that visible at once instead
		// of letting an account/session/password line pass silently.
		log.Error("otpgate-pam only handles PAM_TYPE=auth; use it on an auth line with expose_authtok", "pam_type", pamType)
		return ExitError
	}
	user, err := envValue(o.Env, "PAM_USER")
	if err != nil {
		log.Error("bad environment", "err", err)
		return ExitError
	}
	if err := checkText("PAM_USER", user); err != nil || user == "" {
		log.Error("refusing a missing or unprintable PAM_USER", "err", err)
		return ExitError
	}
	rhost, err := envValue(o.Env, "PAM_RHOST")
	if err != nil {
		log.Error("bad environment", "err", err)
		return ExitError
	}
	if checkText("PAM_RHOST", rhost) != nil {
		rhost = "" // only informational; never worth failing a login over
	}
	log = log.With("user", user)
	if rhost != "" {
		log = log.With("rhost", rhost)
	}

	stdinTimeout := o.StdinTimeout
	if stdinTimeout <= 0 {
		stdinTimeout = DefaultStdinTimeout
	}
	authtok, err := ReadAuthtokWithin(ctx, o.Stdin, stdinTimeout)
	if err != nil {
		code := ExitReject
		if !errors.Is(err, ErrAuthtokEmpty) && !errors.Is(err, ErrAuthtokTooLong) && !errors.Is(err, ErrAuthtokNUL) {
			code = ExitError
		}
		log.Warn("denied", "err", err)
		return code
	}
	defer clear(authtok)
	if len(authtok) > MaxUserPassword {
		log.Warn("denied: the authtok is longer than RADIUS User-Password can carry", "bytes", len(authtok), "max", MaxUserPassword)
		return ExitReject
	}

	cfg, err := LoadConfig(*configPath, o.Euid)
	if err != nil {
		log.Error("denied: cannot use the config", "err", err)
		return ExitError
	}
	client := NewClient(cfg, log)
	ans, server, err := client.Authenticate(ctx, Request{User: user, Password: authtok, CallingStationID: rhost})
	switch {
	case err != nil:
		log.Error("denied: no otpgated server answered; failing closed", "servers", strings.Join(cfg.Servers, ","), "err", err)
		return ExitError
	case ans == AnswerAccept:
		log.Info("accepted", "server", server)
		return ExitAccept
	case ans == AnswerChallenge:
		log.Warn("denied: server asked for a challenge; give this client mode append or otp-only", "server", server)
		return ExitReject
	default:
		log.Info("rejected", "server", server)
		return ExitReject
	}
}

// envValue returns key's value from env. The man page of pam_exec warns that
// the user may control parts of the environment, so a key that appears twice
// with different values is an error rather than a guess.
func envValue(env []string, key string) (string, error) {
	val, found := "", false
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != key {
			continue
		}
		if found && v != val {
			return "", fmt.Errorf("%s is set twice with different values", key)
		}
		val, found = v, true
	}
	return val, nil
}

// lookupEnv reports whether key is set in env at all.
func lookupEnv(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// checkText accepts 0–253 bytes of printable UTF-8 (RADIUS string limits).
func checkText(name, s string) error {
	if len(s) > 253 {
		return fmt.Errorf("%s is longer than 253 bytes", name)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not UTF-8", name)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s has an unprintable character", name)
		}
	}
	return nil
}

// Main is what cmd/otpgate-pam runs: it logs to syslog (LOG_AUTHPRIV) and to
// stderr, which pam_exec discards unless its log= option is set. version is
// what -version prints.
func Main(version string) int {
	stderr := slog.NewTextHandler(os.Stderr, nil)
	var h slog.Handler = stderr
	if sh, err := NewSyslogHandler("otpgate-pam", slog.LevelInfo); err == nil {
		h = slog.NewMultiHandler(sh, stderr)
	} else {
		slog.New(stderr).Warn("syslog unavailable; logging to stderr only", "err", err)
	}
	return Run(context.Background(), Options{
		Args:    os.Args[1:],
		Env:     os.Environ(),
		Stdin:   os.Stdin,
		Euid:    os.Geteuid(),
		Log:     slog.New(h),
		Version: version,
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
	})
}
