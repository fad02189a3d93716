package daemon

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/ldapsource"
	"github.com/otpgate/otpgate/internal/upstream"
)

// passwordSource is the first-factor checker [password] source names, wired
// into auth.Options.Passwords; checker is nil for "local" (the hashes in
// the store).
type passwordSource struct {
	checker    auth.PasswordChecker
	collectors []prometheus.Collector
	close      func()
}

func newPasswordSource(cfg *config.Config, log *slog.Logger) (passwordSource, error) {
	switch cfg.Password.Source {
	case config.SourceLDAP:
		l := cfg.LDAP
		src, err := ldapsource.New(ldapsource.Options{
			URLs: l.URLs, BindDN: l.BindDN, BindPassword: l.BindPassword,
			BaseDN: l.BaseDN, UserFilter: l.UserFilter, StartTLS: l.StartTLSEnabled(), CAFile: l.CAFile,
			GroupAttribute: l.GroupAttribute, GroupFilter: l.GroupFilter,
			Timeout: l.Timeout.Duration, PoolSize: l.PoolSize, Log: log,
		})
		if err != nil {
			return passwordSource{}, fmt.Errorf("ldap: %w", err)
		}
		return passwordSource{checker: src, close: src.Close, collectors: sourceMetrics("ldap", src.Stats,
			"Password checks sent to the LDAP directory.",
			"Password checks and name lookups no LDAP server answered (rejected).",
			"Connections or operations that failed on one LDAP server (failover).")}, nil
	case config.SourceRADIUS:
		return newUpstreamSource(cfg, log)
	default:
		return passwordSource{close: func() {}}, nil
	}
}

// sourceMetrics read a remote password source's counters at scrape time:
// otpgate_<prefix>_checks_total and so on, the three help texts in that
// order.
func sourceMetrics(prefix string, stats func() auth.SourceStats, checks, unavailable, serverFails string) []prometheus.Collector {
	counter := func(name, help string, v func(auth.SourceStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "otpgate_" + prefix + "_" + name, Help: help},
			func() float64 { return float64(v(stats())) })
	}
	return []prometheus.Collector{
		counter("checks_total", checks, func(s auth.SourceStats) uint64 { return s.Checks }),
		counter("unavailable_total", unavailable, func(s auth.SourceStats) uint64 { return s.Unavailable }),
		counter("server_failures_total", serverFails, func(s auth.SourceStats) uint64 { return s.ServerFails }),
	}
}

func newUpstreamSource(cfg *config.Config, log *slog.Logger) (passwordSource, error) {
	u := cfg.RadiusUpstream
	src, err := upstream.New(upstream.Options{Servers: u.Servers, Secret: []byte(u.Secret),
		Timeout: u.Timeout.Duration, NASIdentifier: u.NASIdentifier, Log: log})
	if err != nil {
		return passwordSource{}, fmt.Errorf("radius_upstream: %w", err)
	}
	return passwordSource{checker: src, close: func() {}, collectors: sourceMetrics("radius_upstream", src.Stats,
		"Password checks sent to the upstream RADIUS server.",
		"Password checks no upstream RADIUS server answered (rejected).",
		"Upstream RADIUS servers that did not answer validly (failover).")}, nil
}
