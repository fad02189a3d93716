package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/otpgate/otpgate/totp"
)

// Main is `otpgate bench`: it parses args (without the command name), runs
// the load or writes a users CSV, prints the result to stdout and returns
// the exit code (0 ok, 1 failure, 2 usage).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		server     = fs.String("server", "127.0.0.1:1812", "RADIUS server host:port")
		secret     = fs.String("secret", "", "shared secret (prefer -secret-file)")
		secretFile = fs.String("secret-file", "", "file holding the shared secret (one trailing newline ignored)")
		usersFile  = fs.String("users", "", "users CSV (name,password,totp_secret,groups), the format of `otpgate import`")
		pw         = fs.String("password", "", "plaintext password for users whose CSV row holds a hash (default: USERS.password if it exists)")
		conc       = fs.Int("c", 2*runtime.NumCPU(), "concurrent workers, each with its own socket and one request in flight")
		duration   = fs.Duration("duration", 0, "run this long (default 10s when -n is not set)")
		count      = fs.Int("n", 0, "stop after this many logins")
		mode       = fs.String("mode", "otp-only", "append (password+code), otp-only (code) or challenge (password, then code)")
		timeout    = fs.Duration("timeout", 2*time.Second, "wait for a response this long per try")
		retries    = fs.Int("retries", 0, "retransmissions after a timeout")
		rateFlag   = fs.Float64("rate", 0, "open loop: send this many logins per second whatever the server does, over -c sockets (overload tests)")
		align      = fs.Bool("align", false, "wait for the start of the next 30-second time step before sending, so codes an earlier run used in this step are not sent again")
		format     = fs.String("format", "text", "output: text, kv (one line key=value) or json")
		genUsers   = fs.Int("gen-users", 0, "write N test users to -out instead of running load")
		out        = fs.String("out", "", "with -gen-users: the CSV file to write")
		genPw      = fs.String("gen-passwords", "none", "with -gen-users: none (otp-only), plain, bcrypt, bcrypt:COST or argon2id")
	)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: otpgate bench -users FILE [-server HOST:PORT] (-secret-file F | -secret S) [-c N] [-duration D | -n N] [-mode M]
       otpgate bench -gen-users N -out FILE [-gen-passwords none|plain|bcrypt[:COST]|argon2id]

Sends RADIUS Access-Requests with real, never reused TOTP codes computed from
the users' secrets, and prints throughput, latency and outcome counts.
Only use it against a server you run; each user logs in at most once per
30-second time step, so the user count bounds the sustained rate.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "otpgate bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	if *genUsers > 0 {
		if *out == "" {
			fmt.Fprintln(stderr, "otpgate bench: -gen-users needs -out FILE")
			return 2
		}
		return generate(*out, *genUsers, *genPw, stdout, stderr)
	}

	if *usersFile == "" {
		fmt.Fprintln(stderr, "otpgate bench: -users FILE is required")
		return 2
	}
	sec, err := readSecret(*secret, *secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
		return 2
	}
	f, err := os.Open(*usersFile)
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
		return 1
	}
	users, err := ReadUsers(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %s: %v\n", *usersFile, err)
		return 1
	}
	if *pw == "" {
		if b, err := os.ReadFile(*usersFile + ".password"); err == nil {
			*pw = strings.TrimSuffix(string(b), "\n")
		}
	}
	SetPassword(users, *pw)
	if *duration == 0 && *count == 0 {
		*duration = 10 * time.Second
	}
	if *duration == 0 {
		*duration = 10 * time.Minute // -n alone still stops by itself
	}
	cfg := Config{
		Server: *server, Secret: sec, Users: users, Concurrency: *conc,
		Duration: *duration, N: *count, Mode: Mode(*mode), Timeout: *timeout, Retries: *retries, Rate: *rateFlag,
	}
	if *align {
		// A margin past the boundary: the wall clock may be slewed against
		// the monotonic one the timer uses, and a code of the old step
		// would be a replay of an earlier run's.
		wait := time.Until(totp.Default.StepStart(totp.Default.Step(time.Now())+1)) + 100*time.Millisecond
		fmt.Fprintf(stderr, "otpgate bench: waiting %.1fs for the next time step\n", wait.Seconds())
		select {
		case <-ctx.Done():
			return 1
		case <-time.After(wait):
		}
	}
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
		return 1
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(summary(&cfg, res))
	case "kv":
		s := summary(&cfg, res)
		fmt.Fprintf(stdout, "mode=%s users=%d c=%d logins=%d requests=%d elapsed_s=%.3f rate=%.1f active_rate=%.1f goodput=%.1f "+
			"p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f max_ms=%.3f accept=%d reject=%d challenge=%d timeout=%d invalid=%d no_ma=%d errors=%d waited_s=%.3f exhausted=%d\n",
			s.Mode, s.Users, s.Concurrency, s.Logins, s.Requests, s.ElapsedS, s.Rate, s.ActiveRate, s.Goodput,
			s.P50ms, s.P95ms, s.P99ms, s.MaxMs, s.Accept, s.Reject, s.Challenge, s.Timeout, s.Invalid, s.NoMA, s.Errors, s.WaitedS, s.Exhausted)
	default:
		printText(stdout, &cfg, res)
	}
	if res.Logins == 0 {
		fmt.Fprintln(stderr, "otpgate bench: no login finished")
		return 1
	}
	return 0
}

// Summary is the machine-readable result (-format json).
type Summary struct {
	Server      string  `json:"server"`
	Mode        string  `json:"mode"`
	Users       int     `json:"users"`
	Concurrency int     `json:"concurrency"`
	Logins      int     `json:"logins"`
	Requests    int     `json:"requests"`
	ElapsedS    float64 `json:"elapsed_s"`
	Rate        float64 `json:"rate"`        // logins/s, wall time
	ActiveRate  float64 `json:"active_rate"` // logins/s, without the waits for a new time step
	Goodput     float64 `json:"goodput"`     // accepts/s, wall time
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	Accept      int     `json:"accept"`
	Reject      int     `json:"reject"`
	Challenge   int     `json:"challenge"`
	Timeout     int     `json:"timeout"`
	Invalid     int     `json:"invalid"`
	NoMA        int     `json:"no_message_authenticator"`
	Errors      int     `json:"errors"`
	WaitedS     float64 `json:"waited_s"`
	Exhausted   int     `json:"exhausted_steps"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func summary(cfg *Config, r *Result) Summary {
	return Summary{
		Server: cfg.Server, Mode: string(cfg.Mode), Users: len(cfg.Users), Concurrency: cfg.Concurrency,
		Logins: r.Logins, Requests: r.Requests, ElapsedS: r.Elapsed.Seconds(),
		Rate: r.Throughput(), ActiveRate: r.ActiveThroughput(), Goodput: r.Goodput(),
		P50ms: ms(r.Percentile(0.50)), P95ms: ms(r.Percentile(0.95)), P99ms: ms(r.Percentile(0.99)), MaxMs: ms(r.Max()),
		Accept: r.Accept, Reject: r.Reject, Challenge: r.Challenge, Timeout: r.Timeout,
		Invalid: r.Invalid, NoMA: r.NoMA, Errors: r.Errors, WaitedS: r.Waited.Seconds(), Exhausted: r.Exhausted,
	}
}

func printText(w io.Writer, cfg *Config, r *Result) {
	s := summary(cfg, r)
	fmt.Fprintf(w, "server %s  mode %s  users %d  workers %d\n", s.Server, s.Mode, s.Users, s.Concurrency)
	fmt.Fprintf(w, "logins      %d in %.2fs (%d requests)\n", s.Logins, s.ElapsedS, s.Requests)
	fmt.Fprintf(w, "throughput  %.0f logins/s  (goodput %.0f accepts/s)\n", s.Rate, s.Goodput)
	if r.Exhausted > 0 {
		fmt.Fprintf(w, "user limit  all %d users used in %d time step(s); waited %.2fs for new steps; %.0f logins/s while not waiting\n",
			s.Users, s.Exhausted, s.WaitedS, s.ActiveRate)
	}
	fmt.Fprintf(w, "latency     p50 %.2fms  p95 %.2fms  p99 %.2fms  max %.2fms\n", s.P50ms, s.P95ms, s.P99ms, s.MaxMs)
	fmt.Fprintf(w, "results     accept %d  reject %d  challenge %d  timeout %d\n", s.Accept, s.Reject, s.Challenge, s.Timeout)
	if s.Invalid+s.NoMA+s.Errors > 0 {
		fmt.Fprintf(w, "problems    invalid responses %d  without Message-Authenticator %d  local errors %d\n", s.Invalid, s.NoMA, s.Errors)
	}
}

func readSecret(secret, file string) ([]byte, error) {
	switch {
	case secret != "" && file != "":
		return nil, errors.New("give -secret or -secret-file, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("secret file: %w", err)
		}
		b = []byte(strings.TrimSuffix(string(b), "\n"))
		if len(b) == 0 {
			return nil, fmt.Errorf("secret file %s is empty", file)
		}
		return b, nil
	case secret != "":
		return []byte(secret), nil
	}
	return nil, errors.New("a shared secret is required: -secret-file FILE or -secret S")
}

func generate(out string, n int, pwMode string, stdout, stderr io.Writer) int {
	withPw := pwMode != "none"
	hash := ""
	if withPw && pwMode != "plain" {
		hash = pwMode
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
		return 1
	}
	shared, err := GenerateUsers(f, n, withPw, hash)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
		return 1
	}
	if shared != "" {
		if err := os.WriteFile(out+".password", []byte(shared+"\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "otpgate bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %d users to %s; their shared password is in %s.password\n", n, out, out)
		return 0
	}
	fmt.Fprintf(stdout, "wrote %d users to %s\n", n, out)
	return 0
}
