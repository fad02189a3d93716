package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Password sources ([password] source).
const (
	SourceLocal  = "local"  // otpgate's own argon2id hashes
	SourceLDAP   = "ldap"   // [ldap]: a directory (OpenLDAP, Active Directory)
	SourceRADIUS = "radius" // [radius_upstream]: another RADIUS server (NPS)
)

var validSources = []string{SourceLocal, SourceLDAP, SourceRADIUS}

// Defaults of [ldap] and [radius_upstream].
const (
	DefaultLDAPTimeout     = 5 * time.Second
	DefaultLDAPPoolSize    = 8
	DefaultGroupAttribute  = "memberOf"
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultUpstreamNASID   = "otpgate"
)

// LDAPConfig is [ldap]: where the first factor is checked with
// [password] source = "ldap".
type LDAPConfig struct {
	URLs             []string `toml:"urls"`               // ldaps:// or ldap://, tried in order
	BindDN           string   `toml:"bind_dn"`            // service account that searches; "" = anonymous search
	BindPasswordFile string   `toml:"bind_password_file"` // its password; after Load: absolute path
	BaseDN           string   `toml:"base_dn"`            // where users (and groups) are searched
	UserFilter       string   `toml:"user_filter"`        // holds {user}, replaced by the RFC 4515-escaped name
	StartTLS         *bool    `toml:"start_tls"`          // StartTLS on ldap:// URLs (default true)
	CAFile           string   `toml:"ca_file"`            // PEM CA(s) for the server certificate; default: the system roots
	GroupAttribute   string   `toml:"group_attribute"`    // attribute of the user entry naming its groups (default memberOf); "" = none
	GroupFilter      string   `toml:"group_filter"`       // optional group search: {dn} and {user} are replaced; the cn of each match is a group
	Timeout          Duration `toml:"timeout"`            // budget of one password check, failover included (default 5s)
	PoolSize         int      `toml:"pool_size"`          // connections per purpose (search, user bind), at most (default 8)
	// InsecureSendPasswordsInClear allows ldap:// without StartTLS to a
	// host that is not loopback: passwords then cross the network in clear.
	InsecureSendPasswordsInClear bool `toml:"insecure_send_passwords_in_clear"`

	BindPassword string `toml:"-"` // read from BindPasswordFile by Load
}

// StartTLSEnabled reports start_tls (default true).
func (l LDAPConfig) StartTLSEnabled() bool { return l.StartTLS == nil || *l.StartTLS }

// RadiusUpstreamConfig is [radius_upstream]: the RADIUS server (such as
// Microsoft NPS) that checks the first factor with [password] source =
// "radius".
type RadiusUpstreamConfig struct {
	Servers       []string `toml:"servers"`        // "host:port", tried in order
	SecretFile    string   `toml:"secret_file"`    // shared secret; after Load: absolute path
	Timeout       Duration `toml:"timeout"`        // wait for one server before the next (default 2s)
	NASIdentifier string   `toml:"nas_identifier"` // NAS-Identifier we send (default "otpgate")

	Secret string `toml:"-"` // read from SecretFile by Load
}

func (c *Config) applyDirectoryDefaults(isSet func(key ...string) bool) {
	if c.Password.Source == "" {
		c.Password.Source = SourceLocal
	}
	if !isSet("ldap", "group_attribute") {
		c.LDAP.GroupAttribute = DefaultGroupAttribute
	}
	if !isSet("ldap", "timeout") {
		c.LDAP.Timeout.Duration = DefaultLDAPTimeout
	}
	if !isSet("ldap", "pool_size") {
		c.LDAP.PoolSize = DefaultLDAPPoolSize
	}
	if c.LDAP.StartTLS == nil {
		c.LDAP.StartTLS = ptr(true)
	}
	if !isSet("radius_upstream", "timeout") {
		c.RadiusUpstream.Timeout.Duration = DefaultUpstreamTimeout
	}
	if c.RadiusUpstream.NASIdentifier == "" {
		c.RadiusUpstream.NASIdentifier = DefaultUpstreamNASID
	}
}

// loadDirectorySecrets reads the secrets of the source in use.
func (c *Config) loadDirectorySecrets() []string {
	var problems []string
	read := func(key, path string, into *string) {
		if path == "" {
			return // validate reports a missing file
		}
		s, err := readSecretFile(key, path)
		if err != nil {
			problems = append(problems, err.Error())
			return
		}
		*into = s
	}
	switch c.Password.Source {
	case SourceLDAP:
		read("ldap.bind_password_file", c.LDAP.BindPasswordFile, &c.LDAP.BindPassword)
	case SourceRADIUS:
		read("radius_upstream.secret_file", c.RadiusUpstream.SecretFile, &c.RadiusUpstream.Secret)
	}
	return problems
}

func (c *Config) validateDirectory(bad, warn func(key, format string, args ...any)) {
	switch c.Password.Source {
	case SourceLocal:
	case SourceLDAP:
		c.validateLDAP(bad)
	case SourceRADIUS:
		c.validateUpstream(bad)
	default:
		bad("password.source", "%q is not one of %s", c.Password.Source, strings.Join(validSources, ", "))
	}
	if c.Password.Source != SourceLDAP && len(c.LDAP.URLs) > 0 {
		warn("ldap", "has no effect unless password.source = \"ldap\"")
	}
	if c.Password.Source != SourceRADIUS && len(c.RadiusUpstream.Servers) > 0 {
		warn("radius_upstream", "has no effect unless password.source = \"radius\"")
	}
}

func (c *Config) validateLDAP(bad func(key, format string, args ...any)) {
	l := c.LDAP
	if len(l.URLs) == 0 {
		bad("ldap.urls", "needs at least one URL with password.source = \"ldap\" (ldaps://host or ldap://host with start_tls)")
	}
	for i, raw := range l.URLs {
		key := fmt.Sprintf("ldap.urls[%d]", i)
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(key, "%q is not an LDAP URL such as ldaps://dc1.example.com or ldap://127.0.0.1:389", raw)
			continue
		}
		switch u.Scheme {
		case "ldaps":
		case "ldap":
			if !l.StartTLSEnabled() && !isLoopback(u.Hostname()) && !l.InsecureSendPasswordsInClear {
				bad(key, "%q without start_tls sends passwords in clear; use ldaps://, start_tls = true, or (only on a network you trust) insecure_send_passwords_in_clear = true", raw)
			}
		default:
			bad(key, "%q: the scheme must be ldaps or ldap", raw)
		}
	}
	switch {
	case l.BindDN != "" && l.BindPasswordFile == "":
		bad("ldap.bind_password_file", "is required with bind_dn")
	case l.BindDN == "" && l.BindPasswordFile != "":
		bad("ldap.bind_dn", "is required with bind_password_file")
	}
	if l.BaseDN == "" {
		bad("ldap.base_dn", "is required with password.source = \"ldap\"")
	}
	if strings.Count(l.UserFilter, "{user}") == 0 || !balancedFilter(l.UserFilter) {
		bad("ldap.user_filter", "%q must be an LDAP filter in parentheses holding {user}, e.g. (&(objectClass=person)(uid={user}))", l.UserFilter)
	}
	if l.GroupFilter != "" && !balancedFilter(l.GroupFilter) {
		bad("ldap.group_filter", "%q must be an LDAP filter in parentheses, e.g. (&(objectClass=groupOfNames)(member={dn}))", l.GroupFilter)
	}
	if d := l.Timeout.Duration; d < 100*time.Millisecond || d > time.Minute {
		bad("ldap.timeout", "%s must be between 100ms and 1m", d)
	}
	if l.PoolSize < 1 || l.PoolSize > 1024 {
		bad("ldap.pool_size", "%d must be between 1 and 1024", l.PoolSize)
	}
}

// balancedFilter is a cheap shape check; the LDAP source compiles the
// filter when it starts.
func balancedFilter(f string) bool {
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		return false
	}
	depth := 0
	for _, r := range f {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

func (c *Config) validateUpstream(bad func(key, format string, args ...any)) {
	u := c.RadiusUpstream
	if len(u.Servers) == 0 {
		bad("radius_upstream.servers", "needs at least one \"host:port\" with password.source = \"radius\"")
	}
	for i, s := range u.Servers {
		if err := checkHostPort(s, false); err != nil {
			bad(fmt.Sprintf("radius_upstream.servers[%d]", i), "%v", err)
		} else if _, port, _ := net.SplitHostPort(s); port == "0" {
			bad(fmt.Sprintf("radius_upstream.servers[%d]", i), "%q needs a port (usually 1812)", s)
		}
	}
	if u.SecretFile == "" {
		bad("radius_upstream.secret_file", "is required with password.source = \"radius\"")
	} else if u.Secret != "" && len(u.Secret) < minSecretLen {
		bad("radius_upstream.secret_file", "holds %d bytes; use at least %d", len(u.Secret), minSecretLen)
	}
	if d := u.Timeout.Duration; d < 100*time.Millisecond || d > 30*time.Second {
		bad("radius_upstream.timeout", "%s must be between 100ms and 30s", d)
	}
	if !validName(u.NASIdentifier) {
		bad("radius_upstream.nas_identifier", "%q must be 1-64 letters, digits, '.', '_' or '-'", u.NASIdentifier)
	}
}
