package daemon

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/otpgate/otpgate/internal/config"
)

// diffConfig describes what a reload changes: applied (clients, modes,
// policy, delays, log level, audit) and the keys that need a restart. It
// never includes a secret or a DSN, only that one changed.
func diffConfig(old, next *config.Config) (applied, restart []string) {
	byName := func(cs []config.ClientConfig) map[string]config.ClientConfig {
		m := make(map[string]config.ClientConfig, len(cs))
		for _, c := range cs {
			m[c.Name] = c
		}
		return m
	}
	oldC, newC := byName(old.Clients), byName(next.Clients)
	for _, c := range next.Clients {
		o, ok := oldC[c.Name]
		if !ok {
			applied = append(applied, fmt.Sprintf("client %q added (%s, mode %s)", c.Name, c.Address, c.Mode))
			continue
		}
		var what []string
		if o.Address != c.Address {
			what = append(what, fmt.Sprintf("address %s -> %s", o.Address, c.Address))
		}
		if o.Secret != c.Secret {
			what = append(what, "secret changed")
		}
		if o.Mode != c.Mode {
			what = append(what, fmt.Sprintf("mode %s -> %s", o.Mode, c.Mode))
		}
		if o.MessageAuthenticatorRequired() != c.MessageAuthenticatorRequired() {
			what = append(what, fmt.Sprintf("require_message_authenticator = %v", c.MessageAuthenticatorRequired()))
		}
		if o.ProxyStateLimited() != c.ProxyStateLimited() {
			what = append(what, fmt.Sprintf("limit_proxy_state = %v", c.ProxyStateLimited()))
		}
		for _, w := range what {
			applied = append(applied, fmt.Sprintf("client %q: %s", c.Name, w))
		}
	}
	for _, c := range old.Clients {
		if _, ok := newC[c.Name]; !ok {
			applied = append(applied, fmt.Sprintf("client %q removed", c.Name))
		}
	}
	changed := func(list *[]string, key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			*list = append(*list, fmt.Sprintf("%s: %v -> %v", key, a, b))
		}
	}
	changed(&applied, "auth.mode", old.Auth.Mode, next.Auth.Mode)
	changed(&applied, "auth.mfa", old.Auth.MFA, next.Auth.MFA)
	if !slices.Equal(old.Auth.MFAGroups, next.Auth.MFAGroups) {
		applied = append(applied, fmt.Sprintf("auth.mfa_groups: %q -> %q", old.Auth.MFAGroups, next.Auth.MFAGroups))
	}
	changed(&applied, "auth.grace_until", old.Auth.GraceUntil, next.Auth.GraceUntil)
	changed(&applied, "radius.reject_delay", old.Radius.RejectDelay.Duration, next.Radius.RejectDelay.Duration)
	changed(&applied, "radius.reply_cache_ttl", old.Radius.ReplyCacheTTL.Duration, next.Radius.ReplyCacheTTL.Duration)
	changed(&applied, "radius.reply_cache_max", old.Radius.ReplyCacheMax, next.Radius.ReplyCacheMax)
	changed(&applied, "log.level", old.Log.Level, next.Log.Level)
	changed(&applied, "log.audit", old.Log.Audit, next.Log.Audit)

	changed(&restart, "data_dir", old.DataDir, next.DataDir)
	changed(&restart, "key_file", old.KeyPath(), next.KeyPath())
	changed(&restart, "issuer", old.Issuer, next.Issuer)
	changed(&restart, "control.socket", old.SocketPath(), next.SocketPath())
	changed(&restart, "control.group", old.Control.Group, next.Control.Group)
	changed(&restart, "radius.listen", old.Radius.Listen, next.Radius.Listen)
	changed(&restart, "radius.acct_listen", old.Radius.AcctListen, next.Radius.AcctListen)
	changed(&restart, "radius.challenge_ttl", old.Radius.ChallengeTTL.Duration, next.Radius.ChallengeTTL.Duration)
	changed(&restart, "radius.workers", old.Radius.Workers, next.Radius.Workers)
	changed(&restart, "radius.queue", old.Radius.Queue, next.Radius.Queue)
	changed(&restart, "auth.skew", old.Auth.Skew, next.Auth.Skew)
	changed(&restart, "auth.lockout_threshold", old.Auth.LockoutThreshold, next.Auth.LockoutThreshold)
	changed(&restart, "auth.lockout_base", old.Auth.LockoutBase.Duration, next.Auth.LockoutBase.Duration)
	changed(&restart, "auth.lockout_max", old.Auth.LockoutMax.Duration, next.Auth.LockoutMax.Duration)
	changed(&restart, "auth.enroll_at_login", old.Auth.EnrollAtLogin, next.Auth.EnrollAtLogin)
	changed(&restart, "password", old.Password, next.Password)
	// Never printed: they hold the bind password and the shared secret.
	if !reflect.DeepEqual(old.LDAP, next.LDAP) {
		restart = append(restart, "ldap (changed)")
	}
	if !reflect.DeepEqual(old.RadiusUpstream, next.RadiusUpstream) {
		restart = append(restart, "radius_upstream (changed)")
	}
	changed(&restart, "metrics.listen", old.Metrics.Listen, next.Metrics.Listen)
	changed(&restart, "control.enroll_socket", old.Control.EnrollSocket, next.Control.EnrollSocket)
	changed(&restart, "web.listen", old.Web.Listen, next.Web.Listen)
	changed(&restart, "web.public_url", old.Web.PublicURL, next.Web.PublicURL)
	changed(&restart, "web.tls_cert", old.Web.TLSCert, next.Web.TLSCert)
	changed(&restart, "web.tls_key", old.Web.TLSKey, next.Web.TLSKey)
	changed(&restart, "store.backend", old.Store.Backend, next.Store.Backend)
	// By name only: a DSN may hold a password. After Load, DSN also holds
	// what dsn_file holds, so a rewritten dsn_file shows as a DSN change.
	switch {
	case old.Store.DSNFile != next.Store.DSNFile:
		restart = append(restart, "store.dsn_file (changed)")
	case old.Store.DSN != next.Store.DSN && next.Store.DSNFile != "":
		restart = append(restart, "store.dsn_file (contents changed)")
	case old.Store.DSN != next.Store.DSN:
		restart = append(restart, "store.dsn (changed)")
	}
	return applied, restart
}
