// Package config loads and validates radiusd.toml: strict TOML (unknown keys
// are errors that name the key), version = 1, defaults applied separately from
// validation, relative paths resolved against the config file's directory,
// and secrets that may come from files.
package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/password"
)

// Config is the whole radiusd.toml.
type Config struct {
	Version int    `toml:"version"`
	DataDir string `toml:"data_dir"` // holds otpgate.db and the seed key file
	Issuer  string `toml:"issuer"`   // otpauth:// issuer shown in authenticator apps
	KeyFile string `toml:"key_file"` // default: <data_dir>/seed.key

	Log      LogConfig      `toml:"log"`
	Control  ControlConfig  `toml:"control"`
	Radius   RadiusConfig   `toml:"radius"`
	Clients  []ClientConfig `toml:"client"`
	Auth     AuthConfig     `toml:"auth"`
	Password PasswordConfig `toml:"password"`
	LDAP     LDAPConfig     `toml:"ldap"`
	// RadiusUpstream is the RADIUS server that checks passwords with
	// [password] source = "radius".
	RadiusUpstream RadiusUpstreamConfig `toml:"radius_upstream"`
	Metrics        MetricsConfig        `toml:"metrics"`
	Web            WebConfig            `toml:"web"`
	Store          StoreConfig          `toml:"store"`

	// Path is the file the config was loaded from (not a TOML key).
	Path string `toml:"-"`
	// Warnings are problems that do not stop the daemon (short secrets,
	// keys without effect). Never contain a secret. Not a TOML key.
	Warnings []string `toml:"-"`
}

// LogConfig selects the operational log and the audit log.
type LogConfig struct {
	Level string `toml:"level"` // debug, info (default), warn, error
	Audit string `toml:"audit"` // "stderr" (default), "off", or a file path
}

// ControlConfig is the Unix control socket the otpgate CLI talks to.
type ControlConfig struct {
	Socket string `toml:"socket"` // default: <data_dir>/control.sock
	Group  string `toml:"group"`  // optional admin group allowed besides root and the daemon's user
	// EnrollSocket is the self-enrollment socket (mode 0666) through which
	// an ordinary local user enrolls themselves; "" (default) = off.
	EnrollSocket string `toml:"enroll_socket"`
}

// RadiusConfig is the RADIUS transport.
type RadiusConfig struct {
	Listen        []string `toml:"listen"`          // "127.0.0.1:1812", "[::1]:1812"; default ":1812"
	AcctListen    []string `toml:"acct_listen"`     // accounting (RFC 2866), like listen; default ":1813"; [] turns it off
	ReplyCacheTTL Duration `toml:"reply_cache_ttl"` // RFC 5080: 5–30 s (default 30s)
	ReplyCacheMax int      `toml:"reply_cache_max"` // entries (default 10000)
	ChallengeTTL  Duration `toml:"challenge_ttl"`   // how long a State stays valid (default 120s)
	RejectDelay   Duration `toml:"reject_delay"`    // least time from a request to its Access-Reject, the same for every reject (default 1s)
	Workers       int      `toml:"workers"`         // concurrent password hashes (default runtime.NumCPU())
	Queue         int      `toml:"queue"`           // requests waiting for a worker before drops (default 256)
}

// ClientConfig is one [[client]] (NAS). Address is a CIDR or a bare IP; the
// longest prefix wins.
type ClientConfig struct {
	Name                        string `toml:"name"`
	Address                     string `toml:"address"`
	Secret                      string `toml:"secret"`                        // after Load: also holds the secret read from SecretFile
	SecretFile                  string `toml:"secret_file"`                   // after Load: absolute path
	RequireMessageAuthenticator *bool  `toml:"require_message_authenticator"` // default true
	LimitProxyState             *bool  `toml:"limit_proxy_state"`             // default true
	Mode                        string `toml:"mode"`                          // default: [auth] mode

	secretFromFile bool // Secret was read from SecretFile by Load
}

// AuthConfig is the decision policy.
type AuthConfig struct {
	Mode       string   `toml:"mode"`        // append | challenge | otp-only | auto (default auto)
	MFA        string   `toml:"mfa"`         // required | optional (default required)
	MFAGroups  []string `toml:"mfa_groups"`  // with mfa = "optional": required for members
	GraceUntil string   `toml:"grace_until"` // YYYY-MM-DD: unenrolled users pass on password until then
	Skew       int      `toml:"skew"`        // accepted time steps either side (default 1, 0..2)

	LockoutThreshold int      `toml:"lockout_threshold"` // failures before backoff starts (default 5)
	LockoutBase      Duration `toml:"lockout_base"`      // first lock (default 30s), doubling
	LockoutMax       Duration `toml:"lockout_max"`       // cap (default 4h)

	// EnrollAtLogin: a user who needs MFA and has no token, after a correct
	// password on a challenge or auto client, is asked to enroll in a
	// challenge instead of being rejected (default false).
	EnrollAtLogin bool `toml:"enroll_at_login"`
}

// PasswordConfig is where the first factor is checked, and the argon2id
// cost for new hashes. Defaults are password.DefaultParams.
type PasswordConfig struct {
	Source        string `toml:"source"`            // local (default) | ldap | radius
	Argon2Time    uint32 `toml:"argon2_time"`       // iterations (default 2)
	Argon2MemKiB  uint32 `toml:"argon2_memory_kib"` // default 19456 (19 MiB)
	Argon2Threads uint8  `toml:"argon2_threads"`    // default 1
}

// Params is the [password] cost as password.Params: what the daemon and the
// CLI hash new passwords with, and what the daemon's dummy hash for unknown
// users costs.
func (p PasswordConfig) Params() password.Params {
	return password.Params{Time: p.Argon2Time, MemKiB: p.Argon2MemKiB, Threads: p.Argon2Threads}
}

// MetricsConfig is the Prometheus endpoint; empty Listen disables it.
type MetricsConfig struct {
	Listen string `toml:"listen"` // loopback only, e.g. "127.0.0.1:9812"
}

// WebConfig is the one-time enrollment link page; empty Listen disables it.
type WebConfig struct {
	Listen    string `toml:"listen"`     // host:port; plain HTTP only on loopback
	TLSCert   string `toml:"tls_cert"`   // PEM certificate chain
	TLSKey    string `toml:"tls_key"`    // PEM private key
	PublicURL string `toml:"public_url"` // what links start with, e.g. https://otp.example.com:8443
}

// TLS reports whether the page is served over TLS.
func (w WebConfig) TLS() bool { return w.TLSCert != "" }

// Duration is a time.Duration written as a TOML string such as "30s".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// DBPath is the bbolt database file: <data_dir>/otpgate.db.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "otpgate.db") }

// KeyPath is the seed encryption key file: key_file, else <data_dir>/seed.key.
func (c *Config) KeyPath() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(c.DataDir, "seed.key")
}

// SocketPath is the control socket: control.socket, else <data_dir>/control.sock.
func (c *Config) SocketPath() string {
	if c.Control.Socket != "" {
		return c.Control.Socket
	}
	return filepath.Join(c.DataDir, "control.sock")
}

// SlogLevel is log.level as a slog.Level (info when unset or unknown).
func (l LogConfig) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Prefix parses Address: a CIDR, or a bare IP meaning a single host (/32 or
// /128). Host bits set in a CIDR are an error.
func (c ClientConfig) Prefix() (netip.Prefix, error) {
	if strings.Contains(c.Address, "/") {
		p, err := netip.ParsePrefix(c.Address)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q: invalid CIDR", c.Address)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", c.Address)
		}
		if m := p.Masked(); m != p {
			return netip.Prefix{}, fmt.Errorf("%q: host bits set (did you mean %s?)", c.Address, m)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(c.Address)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q: invalid IP address or CIDR", c.Address)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// MessageAuthenticatorRequired reports require_message_authenticator (default true).
func (c ClientConfig) MessageAuthenticatorRequired() bool {
	return c.RequireMessageAuthenticator == nil || *c.RequireMessageAuthenticator
}

// ProxyStateLimited reports limit_proxy_state (default true).
func (c ClientConfig) ProxyStateLimited() bool {
	return c.LimitProxyState == nil || *c.LimitProxyState
}

const dateLayout = "2006-01-02"
