// Package cli is the otpgate admin and enrollment command line: users,
// enroll, reset, recovery codes, import and backup. It talks to otpgated over
// its control socket and opens the store directly only when no daemon runs.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/safefile"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

// Exit codes of Run.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// storeLockTimeout bounds the wait for the database lock when no daemon
// answers: the CLI must never hang.
const storeLockTimeout = 2 * time.Second

// Run runs the otpgate command line args (without the program name) and
// returns the exit code: 0 ok, 1 failure, 2 usage error.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	defer a.close()
	err := a.run(args)
	var he helpRequest
	var ue *usageError
	var ee exitCode
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &he):
		fmt.Fprint(stdout, he.text)
		return ExitOK
	case errors.As(err, &ee):
		return ee.code // the command has already said why
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "otpgate: %s\n", ue.msg)
		if ue.hint != "" {
			fmt.Fprintf(stderr, "%s\n", ue.hint)
		}
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "otpgate: %s\n", err)
		return ExitFailure
	}
}

// app is one invocation: its streams, the global flags and, once a command
// needs it, the admin service (control socket or store).
type app struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer

	configFlag string
	cfg        *config.Config
	svc        admin.Service
	closers    []func() error
}

// command is one leaf command such as "user add".
type command struct {
	name    string // "user add"
	args    string // synopsis after the name
	summary string // one line for the overview
	help    string // paragraphs after the synopsis
	flags   func(fs *flag.FlagSet)
	// minArgs and maxArgs bound the positional arguments; maxArgs < 0 = any.
	minArgs, maxArgs int
	run              func(a *app, fs *flag.FlagSet, args []string) error
	// rawArgs hands every argument to run unparsed (fs is nil): for a
	// command with a flag parser of its own, such as bench.
	rawArgs bool
}

// exitCode ends Run with that status; the command printed its own message.
type exitCode struct{ code int }

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// commandList is every leaf command in the order help shows them.
type commandList []*command

// newCommands builds the commands afresh for one Run: their flag variables
// live in closures, so concurrent Runs share nothing.
func newCommands() commandList {
	var cs commandList
	cs = append(cs, userCommands()...)
	cs = append(cs, mfaCommands()...)
	cs = append(cs, importCommand(), backupCommand(), migrateCommand(), benchCommand(), versionCommand())
	return cs
}

const globalHelp = `otpgate manages otpgate users and their TOTP tokens.

Usage:
  otpgate [-config PATH] COMMAND [ARGS]
  otpgate --version

It talks to a running otpgated through its control socket; when no daemon
runs it opens the database directly.

Global flags:
  -config PATH   radiusd.toml to use (default: /etc/otpgate/radiusd.toml
                 when it exists, else ./radiusd.toml; a config found
                 without -config is named on stderr)
  --version      print the version and exit (as: otpgate version)

Commands:
`

func (commands commandList) overview() string {
	var b strings.Builder
	b.WriteString(globalHelp)
	w := 0
	for _, c := range commands {
		w = max(w, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", w, c.name, c.summary)
	}
	b.WriteString("\nRun `otpgate COMMAND --help` for the flags and details of one command.\n" +
		"Exit status: 0 ok, 1 failure, 2 usage error.\n")
	return b.String()
}

func (a *app) run(args []string) error {
	commands := newCommands()
	fs := flag.NewFlagSet("otpgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.configFlag, "config", "", "radiusd.toml to use")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return helpRequest{commands.overview()}
		}
		return &usageError{msg: err.Error(), hint: "Run `otpgate --help` for usage."}
	}
	if *showVersion { // as otpgated -version
		fmt.Fprintf(a.stdout, "otpgate %s\n", Version)
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return &usageError{msg: "no command given", hint: strings.TrimRight(commands.overview(), "\n")}
	}
	if rest[0] == "help" {
		return commands.helpFor(rest[1:])
	}
	c, n := commands.lookup(rest)
	if c == nil {
		return commands.unknownCommand(rest)
	}
	return a.runCommand(c, rest[n:])
}

// lookup finds the leaf command named by the first one or two words of args.
func (commands commandList) lookup(args []string) (*command, int) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, len(words)
		}
	}
	return nil, 0
}

// group lists the commands whose name starts with prefix + " ".
func (commands commandList) group(prefix string) []*command {
	var out []*command
	for _, c := range commands {
		if strings.HasPrefix(c.name, prefix+" ") {
			out = append(out, c)
		}
	}
	return out
}

func groupHelp(prefix string, cs []*command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  otpgate %s SUBCOMMAND [ARGS]\n\nSubcommands:\n", prefix)
	w := 0
	for _, c := range cs {
		w = max(w, len(c.name))
	}
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-*s  %s\n", w, c.name, c.summary)
	}
	fmt.Fprintf(&b, "\nRun `otpgate %s SUBCOMMAND --help` for details.\n", prefix)
	return b.String()
}

func (commands commandList) unknownCommand(args []string) error {
	if cs := commands.group(args[0]); len(cs) > 0 {
		if len(args) == 1 || args[1] == "-h" || args[1] == "--help" || args[1] == "-help" {
			if len(args) == 1 {
				return &usageError{msg: fmt.Sprintf("%s: missing subcommand", args[0]), hint: strings.TrimRight(groupHelp(args[0], cs), "\n")}
			}
			return helpRequest{groupHelp(args[0], cs)}
		}
		return &usageError{msg: fmt.Sprintf("unknown command %q", args[0]+" "+args[1]), hint: strings.TrimRight(groupHelp(args[0], cs), "\n")}
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q", args[0]), hint: "Run `otpgate --help` for the list of commands."}
}

func (commands commandList) helpFor(args []string) error {
	if len(args) == 0 {
		return helpRequest{commands.overview()}
	}
	if c, n := commands.lookup(args); c != nil && n == len(args) {
		return helpRequest{c.usage(nil)}
	}
	if cs := commands.group(args[0]); len(cs) > 0 && len(args) == 1 {
		return helpRequest{groupHelp(args[0], cs)}
	}
	return &usageError{msg: fmt.Sprintf("no help for %q", strings.Join(args, " ")), hint: "Run `otpgate --help` for the list of commands."}
}

// usage is the --help text of c; fs (may be nil) supplies the flags. A
// command with a flag parser of its own (rawArgs) has its own usage text,
// synopsis and flags included: that alone.
func (c *command) usage(fs *flag.FlagSet) string {
	if c.rawArgs {
		return strings.TrimRight(c.help, "\n") + "\n"
	}
	if fs == nil {
		fs = c.flagSet(new(string))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage:\n  otpgate %s %s\n\n%s\n", c.name, c.args, c.summary)
	if c.help != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(c.help, "\n"))
	}
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	if len(flags) > 0 {
		sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
		b.WriteString("\nFlags:\n")
		for _, f := range flags {
			name, use := flag.UnquoteUsage(f)
			left := "--" + f.Name
			if name != "" {
				left += " " + name
			}
			fmt.Fprintf(&b, "  %-24s %s\n", left, use)
		}
	}
	return b.String()
}

// flagSet returns c's flags plus -config (accepted after the command too),
// which sets *configPath.
func (c *command) flagSet(configPath *string) *flag.FlagSet {
	fs := flag.NewFlagSet("otpgate "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	fs.StringVar(configPath, "config", *configPath, "use the config file `PATH` (default /etc/otpgate/radiusd.toml when it exists, else ./radiusd.toml)")
	return fs
}

func (a *app) runCommand(c *command, args []string) error {
	if c.rawArgs {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return helpRequest{c.usage(nil)}
		}
		return c.run(a, nil, args)
	}
	fs := c.flagSet(&a.configFlag)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return helpRequest{c.usage(fs)}
	}
	hint := fmt.Sprintf("Usage: otpgate %s %s\nRun `otpgate %s --help` for details.", c.name, c.args, c.name)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("%s: %v", c.name, err), hint: hint}
	}
	switch {
	case len(pos) < c.minArgs:
		return &usageError{msg: fmt.Sprintf("%s: missing argument", c.name), hint: hint}
	case c.maxArgs >= 0 && len(pos) > c.maxArgs:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", c.name, pos[c.maxArgs]), hint: hint}
	}
	err = c.run(a, fs, pos)
	var ue *usageError
	if errors.As(err, &ue) && ue.hint == "" {
		ue.hint = hint
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("user add alice --group vpn"); everything after "--"
// is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// helpRequest carries help text asked for with --help or `otpgate help`.
type helpRequest struct{ text string }

func (h helpRequest) Error() string { return "help requested" }

// usageError is a command line the program can't run: exit status 2.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// stringList is a repeatable flag; each value may also be comma-separated.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// findConfig is config.Find; a test swaps in config.FindAmong with the
// system path in a temp dir, so an otpgate installed on the machine does
// not decide what the test sees.
var findConfig = config.Find

// loadConfig finds and loads radiusd.toml once.
func (a *app) loadConfig() (*config.Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	path, err := findConfig(a.configFlag)
	if err != nil {
		return nil, fmt.Errorf("%w\n(pass the configuration with: otpgate -config PATH ...)", err)
	}
	// The CLI needs no client secrets: an admin in control.group who
	// cannot read the secret files can still manage users.
	cfg, err := config.LoadWithoutSecrets(path)
	if err != nil {
		return nil, err
	}
	if a.configFlag == "" {
		// Chosen by the CLI: say which, so nobody edits the wrong database.
		fmt.Fprintf(a.stderr, "otpgate: using %s (found without -config)\n", cfg.Path)
	}
	a.cfg = cfg
	return cfg, nil
}

// service returns the admin service: the daemon's control socket when it
// answers, else the store opened directly. It never waits more than about
// storeLockTimeout for a lock.
func (a *app) service() (admin.Service, error) {
	if a.svc != nil {
		return a.svc, nil
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	sock := cfg.SocketPath()
	daemon := daemonUsers(cfg)
	svc, err := control.Dial(sock, daemon...)
	if err == nil {
		a.svc = svc
		if c, ok := svc.(io.Closer); ok {
			a.closers = append(a.closers, c.Close)
		}
		return svc, nil
	}
	if errors.Is(err, control.ErrAccessDenied) {
		return nil, fmt.Errorf("otpgated does not let this user use its control socket %s; run otpgate as root, or as a member of control.group in %s", sock, cfg.Path)
	}
	if errors.Is(err, control.ErrUntrusted) {
		return nil, err // says which path, why and the fix; nothing was sent
	}
	// No daemon (ErrNotRunning), or one that does not answer: try the
	// store. A live daemon holds its lock, which openStore reports.
	dialErr := err
	open := func(readOnly bool) (store.Store, error) { return openStore(cfg, daemon, readOnly) }
	// Open once now so that a locked or unreadable database is reported
	// before any prompt; each call then opens bbolt again (see
	// directService), while PostgreSQL stays open.
	// Read-only, so that this writes nothing, unless there is no database
	// yet.
	st, err := open(true)
	if errors.Is(err, os.ErrNotExist) {
		st, err = open(false)
	}
	if err != nil {
		if errors.Is(err, store.ErrLocked) && !errors.Is(dialErr, control.ErrNotRunning) {
			err = fmt.Errorf("%w\n(control socket: %v)", err, dialErr)
		}
		return nil, err
	}
	direct := &directService{params: cfg.Password.Params(), issuer: cfg.Issuer, source: cfg.Password.Source}
	if cfg.Store.Postgres() {
		// No lock to release during prompts: keep this one open.
		a.closers = append(a.closers, st.Close)
		direct.held = st
		a.svc = direct
		return a.svc, nil
	}
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("close the database %s: %w", cfg.DBPath(), err)
	}
	direct.open = open
	direct.dial = func() (admin.Service, error) { return control.Dial(sock, daemon...) }
	a.svc = direct
	return a.svc, nil
}

// daemonUsers returns who besides root and this user may own the data
// directory, the control socket and the process serving it: the data
// directory's owner, the user otpgated runs as (it refuses a data_dir owned
// by anyone but root and itself), provided nobody but root and this user
// can change the directories above it, so that its owner is the one root
// gave it (a package install: otpgate).
func daemonUsers(cfg *config.Config) []int {
	euid := os.Geteuid()
	if safefile.SecureDir(filepath.Dir(cfg.DataDir), euid) != nil {
		return nil
	}
	if uid, err := safefile.Owner(cfg.DataDir); err == nil && uid != 0 && uid != euid {
		return []int{uid}
	}
	return nil
}

// checkDataDirs refuses, as otpgated does, a data directory (or key file
// directory) that anyone but root, this user and the daemon's user could
// change: they could swap in a database or key of their own. It creates
// data_dir (0700) when missing, as opening the store would.
func checkDataDirs(cfg *config.Config, daemon []int) error {
	return safefile.EnsureDirs([]safefile.Dir{
		{What: "data_dir", Path: cfg.DataDir, Mode: 0o700},
		{What: "key_file directory", Path: filepath.Dir(cfg.KeyPath()), Mode: 0o700},
	}, "otpgate opens a database only where nobody but root, you and otpgated's user can change it",
		append([]int{os.Geteuid()}, daemon...)...)
}

// openStore opens the database directly, waiting at most storeLockTimeout
// for its lock, and turns the errors an admin can act on into advice.
func openStore(cfg *config.Config, daemon []int, readOnly bool) (store.Store, error) {
	if cfg.Store.Postgres() {
		return openPostgres(cfg)
	}
	if err := checkDataDirs(cfg, daemon); err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.DBPath(), store.Options{KeyFile: cfg.KeyPath(), LockTimeout: storeLockTimeout, ReadOnly: readOnly})
	switch {
	case err == nil && readOnly:
		return st, nil
	case err == nil:
		if err := matchDataDirOwner(append(store.Files(cfg.DBPath()), cfg.KeyPath())...); err != nil {
			st.Close()
			return nil, err
		}
		return st, nil
	case errors.Is(err, store.ErrLocked):
		return nil, &advice{err: err, msg: fmt.Sprintf("the database %s is locked by another process (otpgated?) but its control socket %s does not answer; check `systemctl status otpgated`", cfg.DBPath(), cfg.SocketPath())}
	// The advice replaces the store's text, which says the same again.
	case errors.Is(err, store.ErrMissingKey):
		return nil, &advice{err: err, msg: fmt.Sprintf("the database %s holds TOTP seeds but the key file %s is missing; restore it from backup (a new key can't read the seeds)", cfg.DBPath(), cfg.KeyPath())}
	case errors.Is(err, store.ErrWrongKey):
		return nil, &advice{err: err, msg: fmt.Sprintf("the key file %s does not match the database %s (replaced, or another server's?); check key_file in %s", cfg.KeyPath(), cfg.DBPath(), cfg.Path)}
	default:
		return nil, fmt.Errorf("open the database %s: %w", cfg.DBPath(), err)
	}
}

// openPostgres opens the shared PostgreSQL store directly: every node
// and this command see the same rows, so nothing needs a lock (a write
// is one transaction whatever the daemons do meanwhile).
func openPostgres(cfg *config.Config) (store.Store, error) {
	dsn, err := cfg.Store.ReadDSN()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: cfg.KeyPath(), MaxConns: 4})
	if err != nil {
		return nil, fmt.Errorf("open the PostgreSQL store ([store] in %s): %w", cfg.Path, err)
	}
	return st, nil
}

func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			fmt.Fprintf(a.stderr, "otpgate: close: %v\n", err)
		}
	}
	a.closers = nil
}

// advice replaces the text of err with what to do about it; errors.Is
// still sees err.
type advice struct {
	err error
	msg string
}

func (a *advice) Error() string { return a.msg }
func (a *advice) Unwrap() error { return a.err }

// explain turns the errors an admin can act on into a sentence saying what
// to do next; other errors pass through.
func explain(err error, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUserNotFound):
		return fmt.Errorf("no user %q; add it with: otpgate user add %s", name, name)
	case errors.Is(err, store.ErrUserExists):
		return fmt.Errorf("user %q already exists; see it with: otpgate user show %s", name, name)
	case errors.Is(err, store.ErrInvalidName):
		return &usageError{msg: fmt.Sprintf("invalid user name %q: use 1-%d characters from A-Z a-z 0-9 . _ @ + - (not starting with '-')", name, store.MaxNameLen)}
	case errors.Is(err, admin.ErrAlreadyEnrolled):
		return fmt.Errorf("user %q already has an active token; to replace it run: otpgate enroll %s --force (the old token keeps working until the new one is verified)", name, name)
	case errors.Is(err, admin.ErrNotEnrolled):
		return fmt.Errorf("user %q has no token; enroll one with: otpgate enroll %s", name, name)
	case errors.Is(err, admin.ErrInvalidGroup):
		return &usageError{msg: err.Error()}
	}
	return err
}

// checkName validates a user name before any work (a password prompt, a
// QR code) is done for it.
func checkName(name string) error {
	if err := store.ValidateName(name); err != nil {
		return explain(err, name)
	}
	return nil
}
