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
		return passwordSource{checker: src, close: src.Close, collectors: ldapMetrics(src)}, nil
	case config.SourceRADIUS:
		return newUpstreamSource(cfg, log)
	default:
		return passwordSource{close: func() {}}, nil
	}
}

// ldapMetrics read the source's counters at scrape time.
func ldapMetrics(src *ldapsource.Source) []prometheus.Collector {
	counter := func(name, help string, v func(ldapsource.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(src.Stats())) })
	}
	return []prometheus.Collector{
		counter("otpgate_ldap_checks_total", "Password checks sent to the LDAP directory.",
			func(s ldapsource.Stats) uint64 { return s.Checks }),
		counter("otpgate_ldap_unavailable_total", "Password checks no LDAP server answered (rejected).",
			func(s ldapsource.Stats) uint64 { return s.Unavailable }),
		counter("otpgate_ldap_server_failures_total", "Connections or operations that failed on one LDAP server (failover).",
			func(s ldapsource.Stats) uint64 { return s.ServerFails }),
	}
}

func newUpstreamSource(cfg *config.Config, log *slog.Logger) (passwordSource, error) {
	u := cfg.RadiusUpstream
	src, err := upstream.New(upstream.Options{Servers: u.Servers, Secret: []byte(u.Secret),
		Timeout: u.Timeout.Duration, NASIdentifier: u.NASIdentifier, Log: log})
	if err != nil {
		return passwordSource{}, fmt.Errorf("radius_upstream: %w", err)
	}
	counter := func(name, help string, v func(upstream.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(src.Stats())) })
	}
	return passwordSource{checker: src, close: func() {}, collectors: []prometheus.Collector{
		counter("otpgate_radius_upstream_checks_total", "Password checks sent to the upstream RADIUS server.",
			func(s upstream.Stats) uint64 { return s.Checks }),
		counter("otpgate_radius_upstream_unavailable_total", "Password checks no upstream RADIUS server answered (rejected).",
			func(s upstream.Stats) uint64 { return s.Unavailable }),
		counter("otpgate_radius_upstream_server_failures_total", "Upstream RADIUS servers that did not answer validly (failover).",
			func(s upstream.Stats) uint64 { return s.ServerFails }),
	}}, nil
}
