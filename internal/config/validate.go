package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/totp"
)

// Defaults for keys that are not set. The [password] defaults are
// password.DefaultParams.
const (
	DefaultDataDir       = "/var/lib/otpgate"
	DefaultIssuer        = "otpgate"
	DefaultListen        = ":1812"
	DefaultAcctListen    = ":1813"
	DefaultReplyCacheTTL = 30 * time.Second
	DefaultReplyCacheMax = 10000
	DefaultChallengeTTL  = 120 * time.Second
	// DefaultRejectDelay is longer than the work of any Reject (a password
	// hash, a store write), so a Reject's timing tells nothing, and well
	// under the 3-5 s most NASes wait before retransmitting.
	DefaultRejectDelay   = time.Second
	DefaultQueue         = 256
	DefaultSkew          = 1
	DefaultLockoutThresh = 5
	DefaultLockoutBase   = 30 * time.Second
	DefaultLockoutMax    = 4 * time.Hour

	minSecretLen  = 16
	goodSecretLen = 24
	maxSocketPath = 107 // sun_path is 108 bytes with the terminating NUL
)

// applyDefaults fills every key that isSet reports as absent. It never
// validates: an explicit bad value stays for Validate to report.
func (c *Config) applyDefaults(isSet func(key ...string) bool) {
	str := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	str(&c.DataDir, DefaultDataDir)
	str(&c.Issuer, DefaultIssuer)
	str(&c.Log.Level, "info")
	str(&c.Log.Audit, "stderr")
	str(&c.Auth.Mode, "auto")
	str(&c.Auth.MFA, "required")
	str(&c.Store.Backend, BackendBbolt)
	if !isSet("radius", "listen") {
		c.Radius.Listen = []string{DefaultListen}
	}
	if !isSet("radius", "acct_listen") {
		c.Radius.AcctListen = []string{DefaultAcctListen}
	}
	dur := func(d *Duration, def time.Duration, key ...string) {
		if !isSet(key...) {
			d.Duration = def
		}
	}
	dur(&c.Radius.ReplyCacheTTL, DefaultReplyCacheTTL, "radius", "reply_cache_ttl")
	dur(&c.Radius.ChallengeTTL, DefaultChallengeTTL, "radius", "challenge_ttl")
	dur(&c.Radius.RejectDelay, DefaultRejectDelay, "radius", "reject_delay")
	dur(&c.Auth.LockoutBase, DefaultLockoutBase, "auth", "lockout_base")
	dur(&c.Auth.LockoutMax, DefaultLockoutMax, "auth", "lockout_max")
	num := func(v *int, def int, key ...string) {
		if !isSet(key...) {
			*v = def
		}
	}
	num(&c.Radius.ReplyCacheMax, DefaultReplyCacheMax, "radius", "reply_cache_max")
	num(&c.Radius.Workers, runtime.NumCPU(), "radius", "workers")
	num(&c.Radius.Queue, DefaultQueue, "radius", "queue")
	num(&c.Auth.Skew, DefaultSkew, "auth", "skew")
	num(&c.Auth.LockoutThreshold, DefaultLockoutThresh, "auth", "lockout_threshold")
	if !isSet("password", "argon2_time") {
		c.Password.Argon2Time = password.DefaultParams.Time
	}
	if !isSet("password", "argon2_memory_kib") {
		c.Password.Argon2MemKiB = password.DefaultParams.MemKiB
	}
	if !isSet("password", "argon2_threads") {
		c.Password.Argon2Threads = password.DefaultParams.Threads
	}
	c.applyDirectoryDefaults(isSet)
	for i := range c.Clients {
		cl := &c.Clients[i]
		str(&cl.Mode, c.Auth.Mode)
		if cl.RequireMessageAuthenticator == nil {
			cl.RequireMessageAuthenticator = ptr(true)
		}
		if cl.LimitProxyState == nil {
			cl.LimitProxyState = ptr(true)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Validate checks a config that has its defaults applied. It does not
// change c and does no I/O. The error is a *ValidationError whose problems
// each name the key ("client[1].address: ...").
func (c *Config) Validate() error {
	problems, _ := c.validate()
	if len(problems) > 0 {
		return &ValidationError{Path: c.Path, Problems: problems}
	}
	return nil
}

var (
	validModes = []string{"append", "challenge", "otp-only", "auto"}
	validMFA   = []string{"required", "optional"}
	validLevel = []string{"debug", "info", "warn", "error"}
)

func (c *Config) validate() (problems, warnings []string) {
	bad := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	warn := func(key, format string, args ...any) {
		warnings = append(warnings, key+": "+fmt.Sprintf(format, args...))
	}

	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch {
	case c.Issuer == "":
		bad("issuer", "must not be empty")
	case strings.Contains(c.Issuer, ":"):
		bad("issuer", "%q must not contain ':' (it separates issuer and account in otpauth:// labels)", c.Issuer)
	case len(c.Issuer) > 64 || strings.ContainsFunc(c.Issuer, isControl):
		bad("issuer", "%q must be at most 64 printable characters", c.Issuer)
	}

	if !oneOf(c.Log.Level, validLevel) {
		bad("log.level", "%q is not one of %s", c.Log.Level, strings.Join(validLevel, ", "))
	}
	if c.Log.Audit == "" {
		bad("log.audit", `must be "stderr", "off" or a file path`)
	}

	if p := c.SocketPath(); len(p) > maxSocketPath {
		key := "control.socket"
		if c.Control.Socket == "" {
			key = "data_dir"
		}
		bad(key, "control socket path %q is %d bytes; Unix sockets allow at most %d (set control.socket to a shorter path)", p, len(p), maxSocketPath)
	}
	if g := c.Control.Group; g != "" && !validName(g) {
		bad("control.group", "%q is not a valid group name", g)
	}

	c.validateRadius(bad)
	c.validateClients(bad, warn)
	c.validateAuth(bad, warn)
	c.validateDirectory(bad, warn)
	c.validateStore(bad, warn)

	pw := c.Password
	if pw.Argon2Time < 1 || pw.Argon2Time > 20 {
		bad("password.argon2_time", "%d must be between 1 and 20", pw.Argon2Time)
	}
	if pw.Argon2Threads < 1 {
		bad("password.argon2_threads", "must be at least 1")
	}
	if lo := 8 * uint32(max(pw.Argon2Threads, 1)); pw.Argon2MemKiB < lo || pw.Argon2MemKiB > 4<<20 {
		bad("password.argon2_memory_kib", "%d must be between %d and %d (4 GiB)", pw.Argon2MemKiB, lo, 4<<20)
	}

	if l := c.Metrics.Listen; l != "" {
		if err := checkHostPort(l, false); err != nil {
			bad("metrics.listen", "%v", err)
		} else if host, _, _ := net.SplitHostPort(l); !isLoopback(host) {
			bad("metrics.listen", "%q must be a loopback address (127.0.0.1, [::1] or localhost): metrics are not authenticated", l)
		}
	}
	c.validateWeb(bad, warn)
	return problems, warnings
}

func (c *Config) validateRadius(bad func(key, format string, args ...any)) {
	r := c.Radius
	if len(r.Listen) == 0 {
		bad("radius.listen", "needs at least one address (default %q)", DefaultListen)
	}
	seen := map[string]int{}
	for i, l := range r.Listen {
		key := fmt.Sprintf("radius.listen[%d]", i)
		if err := checkHostPort(l, true); err != nil {
			bad(key, "%v", err)
			continue
		}
		if j, dup := seen[l]; dup {
			bad(key, "%q repeats radius.listen[%d]", l, j)
		}
		seen[l] = i
	}
	// acct_listen may be empty: no accounting sockets.
	seenAcct := map[string]int{}
	for i, l := range r.AcctListen {
		key := fmt.Sprintf("radius.acct_listen[%d]", i)
		if err := checkHostPort(l, true); err != nil {
			bad(key, "%v", err)
			continue
		}
		if j, dup := seenAcct[l]; dup {
			bad(key, "%q repeats radius.acct_listen[%d]", l, j)
		} else if j, dup := seen[l]; dup && !strings.HasSuffix(l, ":0") {
			bad(key, "%q is also radius.listen[%d]; accounting needs its own port (usually 1813)", l, j)
		}
		seenAcct[l] = i
	}
	durIn := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad(key, "%s must be between %s and %s", d, lo, hi)
		}
	}
	durIn("radius.reply_cache_ttl", r.ReplyCacheTTL.Duration, 5*time.Second, 30*time.Second)
	durIn("radius.challenge_ttl", r.ChallengeTTL.Duration, 10*time.Second, 10*time.Minute)
	durIn("radius.reject_delay", r.RejectDelay.Duration, 0, 5*time.Second)
	intIn := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			bad(key, "%d must be between %d and %d", v, lo, hi)
		}
	}
	intIn("radius.reply_cache_max", r.ReplyCacheMax, 1, 1_000_000)
	intIn("radius.workers", r.Workers, 1, 1024)
	intIn("radius.queue", r.Queue, 1, 100_000)
}

func (c *Config) validateClients(bad, warn func(key, format string, args ...any)) {
	if len(c.Clients) == 0 {
		warn("client", "no [[client]] is configured: every RADIUS request will be dropped")
	}
	names := map[string]int{}
	prefixes := map[netip.Prefix]int{}
	for i, cl := range c.Clients {
		key := fmt.Sprintf("client[%d]", i)
		switch {
		case cl.Name == "":
			bad(key+".name", "is required")
		case !validName(cl.Name):
			bad(key+".name", "%q must be 1-64 letters, digits, '.', '_' or '-'", cl.Name)
		default:
			if j, dup := names[cl.Name]; dup {
				bad(key+".name", "%q is also the name of client[%d]", cl.Name, j)
			} else {
				names[cl.Name] = i
			}
		}
		if cl.Address == "" {
			bad(key+".address", "is required (a CIDR such as 10.0.0.0/24, or an IP)")
		} else if p, err := cl.Prefix(); err != nil {
			bad(key+".address", "%v", err)
		} else if j, dup := prefixes[p]; dup {
			bad(key+".address", "%s is also the address of client[%d] (%q)", p, j, c.Clients[j].Name)
		} else {
			prefixes[p] = i
		}
		switch {
		case cl.SecretFile != "" && cl.Secret != "" && !cl.secretFromFile:
			bad(key, "set only one of secret and secret_file")
		case cl.Secret == "" && cl.SecretFile == "":
			bad(key+".secret", "is required (or secret_file)")
		case cl.Secret == "":
			// secret_file could not be read; loadSecrets reported it
		case len(cl.Secret) < minSecretLen:
			bad(secretKey(key, cl), "is %d bytes; use at least %d (24 or more recommended, e.g. `openssl rand -base64 24`)", len(cl.Secret), minSecretLen)
		case len(cl.Secret) < goodSecretLen:
			warn(secretKey(key, cl), "is %d bytes; %d or more are recommended", len(cl.Secret), goodSecretLen)
		}
		if !oneOf(cl.Mode, validModes) {
			bad(key+".mode", "%q is not one of %s", cl.Mode, strings.Join(validModes, ", "))
		}
		if !cl.MessageAuthenticatorRequired() && !cl.ProxyStateLimited() {
			bad(key, "client %q: require_message_authenticator and limit_proxy_state cannot both be false (that leaves it open to Blast-RADIUS, CVE-2024-3596)", cl.Name)
		}
	}
}

func secretKey(key string, cl ClientConfig) string {
	if cl.secretFromFile {
		return key + ".secret_file"
	}
	return key + ".secret"
}

func (c *Config) validateAuth(bad, warn func(key, format string, args ...any)) {
	a := c.Auth
	if !oneOf(a.Mode, validModes) {
		bad("auth.mode", "%q is not one of %s", a.Mode, strings.Join(validModes, ", "))
	}
	if !oneOf(a.MFA, validMFA) {
		bad("auth.mfa", "%q is not one of %s", a.MFA, strings.Join(validMFA, ", "))
	}
	for i, g := range a.MFAGroups {
		if g == "" || strings.ContainsFunc(g, isControl) {
			bad(fmt.Sprintf("auth.mfa_groups[%d]", i), "%q is not a valid group name", g)
		}
	}
	if len(a.MFAGroups) > 0 && a.MFA != "optional" {
		warn("auth.mfa_groups", "has no effect unless mfa = \"optional\" (with mfa = %q everyone needs a code)", a.MFA)
	}
	if a.GraceUntil != "" {
		if _, err := time.Parse(dateLayout, a.GraceUntil); err != nil {
			bad("auth.grace_until", "%q is not a date in the form YYYY-MM-DD", a.GraceUntil)
		}
	}
	if a.Skew < 0 || a.Skew > totp.MaxSkew {
		bad("auth.skew", "%d must be %s (time steps of %d s either side)", a.Skew, zeroTo(totp.MaxSkew), totp.DefaultPeriod)
	}
	if a.LockoutThreshold < 1 || a.LockoutThreshold > 100 {
		bad("auth.lockout_threshold", "%d must be between 1 and 100", a.LockoutThreshold)
	}
	if d := a.LockoutBase.Duration; d < time.Second || d > time.Hour {
		bad("auth.lockout_base", "%s must be between 1s and 1h", d)
	}
	if d := a.LockoutMax.Duration; d < a.LockoutBase.Duration || d > 30*24*time.Hour {
		bad("auth.lockout_max", "%s must be at least lockout_base (%s) and at most 720h", d, a.LockoutBase.Duration)
	}
}

// checkHostPort parses "host:port"; an empty host (all addresses) is
// allowed only when allowAny is set.
func checkHostPort(s string, allowAny bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q: %s (want host:port, e.g. 127.0.0.1:1812 or [::1]:1812)", s, ae.Err)
		}
		return fmt.Errorf("%q: want host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number between 0 and 65535", s, port)
	}
	switch {
	case host == "":
		if !allowAny {
			return fmt.Errorf("%q: needs an explicit host", s)
		}
	case host == "localhost":
	default:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("%q: host %q is not an IP address", s, host)
		}
		if a.Zone() != "" && !a.IsLinkLocalUnicast() {
			return fmt.Errorf("%q: a zone is only meaningful on link-local addresses", s)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// validName accepts names safe in logs and metric labels.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// zeroTo lists 0..n for a message: "0, 1 or 2".
func zeroTo(n int) string {
	s := "0"
	for i := 1; i <= n; i++ {
		if i == n {
			s += " or "
		} else {
			s += ", "
		}
		s += strconv.Itoa(i)
	}
	return s
}
