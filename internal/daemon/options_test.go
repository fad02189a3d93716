package daemon

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/radius"
)

// parseConfig loads "version = 1" plus extra through the real loader, so
// every default is applied.
func parseConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "radiusd.toml")
	if err := os.WriteFile(path, []byte("version = 1\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthOptionsDefaults(t *testing.T) {
	o, err := authOptions(parseConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	n := runtime.NumCPU()
	if o.Skew != 1 || o.LockoutThreshold != 5 || o.LockoutInitial != 30*time.Second || o.LockoutMax != 4*time.Hour ||
		o.ChallengeTTL != 120*time.Second || o.HashWorkers != n || o.HashQueue != 256 ||
		o.PasswordHashParams != password.DefaultParams || o.Policy.MFA != auth.MFARequired || !o.Policy.GraceUntil.IsZero() {
		t.Fatalf("defaults: %+v", o)
	}
	// An explicit skew = 0 (config.Load defaults an unset skew to 1) stays 0.
	if o, err := authOptions(parseConfig(t, "[auth]\nskew = 0\n")); err != nil || o.Skew != 0 {
		t.Fatalf("skew 0: %d, %v", o.Skew, err)
	}
}

func TestAuthOptions(t *testing.T) {
	c := &config.Config{}
	c.Auth = config.AuthConfig{
		MFA: "optional", MFAGroups: []string{"vpn"}, GraceUntil: "2026-03-31", Skew: 2,
		LockoutThreshold: 3,
		LockoutBase:      config.Duration{Duration: time.Minute},
		LockoutMax:       config.Duration{Duration: time.Hour},
	}
	c.Radius.ChallengeTTL = config.Duration{Duration: time.Minute}
	c.Radius.Workers = 3
	c.Radius.Queue = 7
	c.Password = config.PasswordConfig{Argon2Time: 3, Argon2MemKiB: 1024, Argon2Threads: 1}
	o, err := authOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	wantGrace := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if o.Skew != 2 || o.LockoutThreshold != 3 || o.LockoutInitial != time.Minute || o.LockoutMax != time.Hour ||
		o.ChallengeTTL != time.Minute || o.HashWorkers != 3 || o.HashQueue != 7 ||
		o.PasswordHashParams != (password.Params{Time: 3, MemKiB: 1024, Threads: 1}) ||
		o.Policy.MFA != auth.MFAOptional || len(o.Policy.MFAGroups) != 1 || !o.Policy.GraceUntil.Equal(wantGrace) {
		t.Fatalf("options: %+v", o)
	}
	// The last second of 2026-03-31 UTC is in grace, midnight is not.
	if !time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC).Before(o.Policy.GraceUntil) || wantGrace.Before(o.Policy.GraceUntil) {
		t.Fatal("grace boundary")
	}
	c.Auth.MFAGroups[0] = "changed"
	if o.Policy.MFAGroups[0] != "vpn" {
		t.Fatal("MFAGroups aliases the config")
	}
}

// TestAuthOptionsErrors: a config that config.Validate would refuse (built
// by hand here) is refused by the conversion too, naming the option.
func TestAuthOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		mut  func(c *config.Config)
		want string
	}{
		{"grace format", func(c *config.Config) { c.Auth.GraceUntil = "31.03.2026" }, "grace_until"},
		{"grace date", func(c *config.Config) { c.Auth.GraceUntil = "2026-02-30" }, "grace_until"},
		{"mfa", func(c *config.Config) { c.Auth.MFA = "sometimes" }, "MFA"},
		{"skew", func(c *config.Config) { c.Auth.Skew = -1 }, "Skew"},
		{"skew big", func(c *config.Config) { c.Auth.Skew = 11 }, "Skew"},
		{"threshold", func(c *config.Config) { c.Auth.LockoutThreshold = -2 }, "LockoutThreshold"},
		{"max < base", func(c *config.Config) {
			c.Auth.LockoutBase = config.Duration{Duration: time.Hour}
			c.Auth.LockoutMax = config.Duration{Duration: time.Minute}
		}, "LockoutMax"},
		{"queue", func(c *config.Config) { c.Radius.Queue = -1 }, "HashQueue"},
		{"workers", func(c *config.Config) { c.Radius.Workers = -1 }, "HashWorkers"},
		{"password", func(c *config.Config) { c.Password.Argon2Threads = 0 }, "PasswordHashParams"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseConfig(t, "")
			tc.mut(c)
			_, err := authOptions(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestRadiusOptions(t *testing.T) {
	c := parseConfig(t, `[radius]
listen = ["127.0.0.1:1812", "[::1]:1812"]
reply_cache_ttl = "10s"
reply_cache_max = 50
reject_delay = "1s"
workers = 3
queue = 7
[auth]
mode = "challenge"
[[client]]
name = "vpn"
address = "10.0.0.0/24"
secret = "0123456789abcdef0123456789"
[[client]]
name = "legacy"
address = "192.0.2.7"
secret = "abcdef0123456789abcdef0123"
require_message_authenticator = false
mode = "otp-only"
`)
	o, err := radiusOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	if o.ReplyCacheTTL != 10*time.Second ||
		o.ReplyCacheMaxEntries != 50 || o.RejectDelay != time.Second || o.Handlers != 3+7 || o.QueueLen != 7 {
		t.Fatalf("options: %+v", o)
	}
	want := []radius.Client{
		// require_message_authenticator and limit_proxy_state default to
		// true, mode to [auth] mode: config's defaults, carried over.
		{Name: "vpn", Address: "10.0.0.0/24", Secret: "0123456789abcdef0123456789",
			RequireMessageAuthenticator: true, LimitProxyState: true, Mode: auth.ModeChallenge},
		{Name: "legacy", Address: "192.0.2.7", Secret: "abcdef0123456789abcdef0123",
			RequireMessageAuthenticator: false, LimitProxyState: true, Mode: auth.ModeOTPOnly},
	}
	if !slices.Equal(o.Clients, want) {
		t.Fatalf("clients:\n got %+v\nwant %+v", o.Clients, want)
	}
}

// TestRadiusOptionsErrors: a config that config.Validate would refuse
// (built by hand here) is refused by the conversion too, naming the option.
func TestRadiusOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		mut  func(c *config.Config)
		want string
	}{
		{"reply cache ttl", func(c *config.Config) { c.Radius.ReplyCacheTTL.Duration = 0 }, "ReplyCacheTTL"},
		{"reply cache max", func(c *config.Config) { c.Radius.ReplyCacheMax = 0 }, "ReplyCacheMaxEntries"},
		{"reject delay", func(c *config.Config) { c.Radius.RejectDelay.Duration = -time.Second }, "RejectDelay"},
		{"queue", func(c *config.Config) { c.Radius.Queue = 0 }, "QueueLen"},
		{"client mode", func(c *config.Config) {
			c.Clients = []config.ClientConfig{{Name: "a", Address: "10.0.0.1", Secret: "0123456789abcdef", Mode: "sms"}}
		}, "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseConfig(t, "")
			tc.mut(c)
			_, err := radiusOptions(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
