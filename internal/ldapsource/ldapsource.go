// Package ldapsource checks passwords against an LDAP directory (OpenLDAP,
// Active Directory): it searches for the user with a service account, then
// binds as the user's entry with the typed password. It implements
// auth.PasswordChecker; the daemon wires it in with [password] source =
// "ldap". Connections are pooled and bounded; passwords are never kept or
// logged.
package ldapsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/otpgate/otpgate/auth"
)

// ErrUnavailable means no server answered within the request's budget.
var ErrUnavailable = errors.New("ldapsource: no LDAP server answered")

// Options configures a Source. The daemon builds it from [ldap].
type Options struct {
	URLs         []string // ldaps:// or ldap://, tried in order
	BindDN       string   // service account; "" = anonymous search
	BindPassword string
	BaseDN       string
	UserFilter   string // holds {user}
	StartTLS     bool   // on ldap:// URLs
	CAFile       string // PEM; "" = the system roots
	// GroupAttribute names the user entry's groups (memberOf); the first
	// RDN value of each is the group name. "" = none.
	GroupAttribute string
	// GroupFilter, if set, is a group search under BaseDN ({dn}, {user}
	// replaced, escaped); the cn of each match is a group.
	GroupFilter string
	Timeout     time.Duration // budget of one Check, failover included
	PoolSize    int           // connections per purpose (search, user bind)
	Log         *slog.Logger
}

// Source is an auth.PasswordChecker over LDAP. It is safe for concurrent use.
type Source struct {
	opt          Options
	log          *slog.Logger
	tls          *tls.Config
	search, bind *pool

	checks, unavailable, serverFails atomic.Uint64
}

var (
	_ auth.PasswordChecker = (*Source)(nil)
	_ auth.NameResolver    = (*Source)(nil)
)

// nameAttributeRe finds the attribute user_filter compares with the name:
// uid in (&(objectClass=person)(uid={user})), sAMAccountName for AD.
var nameAttributeRe = regexp.MustCompile(`\(([A-Za-z][A-Za-z0-9-]*)=\{user\}\)`)

// CanonicalName implements auth.NameResolver: the value of the filter's
// name attribute (its first (attr={user}) term) in the one entry that
// matches user, whichever term matched: with
// (|(sAMAccountName={user})(userPrincipalName={user})), "ALICE" and
// "alice@corp.example.com" are both "alice". No entry or several: user as
// typed, which Check refuses as well. A search without an answer, or an
// entry without the attribute (or with several values, none in its RDN),
// is an error: auth must not create a record under a spelling the
// directory did not give. An entry with several values is named by the
// one in its RDN. Without an (attr={user}) term: user as typed.
func (s *Source) CanonicalName(ctx context.Context, user string) (string, error) {
	m := nameAttributeRe.FindStringSubmatch(s.opt.UserFilter)
	if m == nil {
		return user, nil
	}
	attr := m[1]
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	filter := strings.ReplaceAll(s.opt.UserFilter, "{user}", ldap.EscapeFilter(user))
	// Size limit 2, as in Check: a second match is ambiguous.
	req := ldap.NewSearchRequest(s.opt.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, filter, []string{attr}, nil)
	var sr *ldap.SearchResult
	err := s.search.do(ctx, func(c *ldap.Conn) (err error) { sr, err = c.Search(req); return err })
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return user, nil
	case err != nil:
		if errors.Is(err, ErrUnavailable) {
			s.unavailable.Add(1)
			s.log.Error("ldap: no server answered; the login is rejected", "user", user, "urls", s.opt.URLs, "err", err)
		}
		return "", fmt.Errorf("ldapsource: name search: %w", err)
	case len(sr.Entries) != 1:
		return user, nil
	}
	entry := sr.Entries[0]
	values := entry.GetEqualFoldAttributeValues(attr)
	switch len(values) {
	case 1:
		return values[0], nil
	case 0:
		return "", fmt.Errorf("ldapsource: entry %s has no %s", entry.DN, attr)
	}
	// Several values: the one the entry is named by (its RDN), whichever
	// was typed, so that every one of them reaches one record.
	if dn, err := ldap.ParseDN(entry.DN); err == nil && len(dn.RDNs) > 0 {
		for _, a := range dn.RDNs[0].Attributes {
			if !strings.EqualFold(a.Type, attr) {
				continue
			}
			for _, v := range values {
				if strings.EqualFold(v, a.Value) {
					return v, nil
				}
			}
		}
	}
	return "", fmt.Errorf("ldapsource: entry %s has %d values of %s and is not named by one of them", entry.DN, len(values), attr)
}

// New checks opt and returns a Source. It does not connect: the first
// Check does, so the daemon starts while the directory is down.
func New(opt Options) (*Source, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case len(opt.URLs) == 0:
		return nil, errors.New("ldapsource: no URLs")
	case opt.PoolSize < 1:
		return nil, errors.New("ldapsource: PoolSize must be at least 1")
	case opt.Timeout <= 0:
		return nil, errors.New("ldapsource: Timeout must be positive")
	case !strings.Contains(opt.UserFilter, "{user}"):
		return nil, errors.New("ldapsource: UserFilter lacks {user}")
	}
	for _, f := range []string{opt.UserFilter, opt.GroupFilter} {
		if f == "" {
			continue
		}
		probe := strings.NewReplacer("{user}", "x", "{dn}", "x").Replace(f)
		if _, err := ldap.CompileFilter(probe); err != nil {
			return nil, fmt.Errorf("ldapsource: filter %q: %w", f, err)
		}
	}
	for _, raw := range opt.URLs {
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
			return nil, fmt.Errorf("ldapsource: %q is not an ldap:// or ldaps:// URL", raw)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldapsource: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldapsource: ca_file %s holds no PEM certificate", opt.CAFile)
		}
		tc.RootCAs = pool
	}
	s := &Source{opt: opt, log: opt.Log.With("component", "ldap"), tls: tc}
	s.search = newPool(s, true)
	s.bind = newPool(s, false)
	return s, nil
}

// Stats returns the counters.
func (s *Source) Stats() auth.SourceStats {
	return auth.SourceStats{Checks: s.checks.Load(), Unavailable: s.unavailable.Load(), ServerFails: s.serverFails.Load()}
}

// Close closes the idle connections.
func (s *Source) Close() {
	s.search.close()
	s.bind.close()
}

// Check implements auth.PasswordChecker: one search and at most one bind
// as the user per call (another only if the connection broke before an
// answer). An empty password never binds.
func (s *Source) Check(ctx context.Context, user, password string) (auth.PasswordResult, error) {
	s.checks.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	res, err := s.check(ctx, user, password)
	if errors.Is(err, ErrUnavailable) {
		s.unavailable.Add(1)
		s.log.Error("ldap: no server answered; the login is rejected", "user", user, "urls", s.opt.URLs, "err", err)
	}
	return res, err
}

func (s *Source) check(ctx context.Context, user, password string) (auth.PasswordResult, error) {
	attrs := []string{"userAccountControl"}
	if s.opt.GroupAttribute != "" {
		attrs = append(attrs, s.opt.GroupAttribute)
	}
	filter := strings.ReplaceAll(s.opt.UserFilter, "{user}", ldap.EscapeFilter(user))
	// Size limit 2: a second match is an error (ambiguous), not a choice.
	req := ldap.NewSearchRequest(s.opt.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, filter, attrs, nil)
	var sr *ldap.SearchResult
	err := s.search.do(ctx, func(c *ldap.Conn) (err error) { sr, err = c.Search(req); return err })
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		s.log.Warn("ldap: more than one entry matches the user filter; rejected", "user", user)
		return auth.PasswordResult{}, nil
	case err != nil:
		return auth.PasswordResult{}, err
	case len(sr.Entries) != 1:
		return auth.PasswordResult{}, nil
	}
	entry := sr.Entries[0]
	if adDisabled(entry) {
		s.log.Info("ldap: account is disabled in the directory", "user", user)
		return auth.PasswordResult{}, nil
	}
	if password == "" {
		// An empty simple bind is an anonymous bind, which succeeds.
		return auth.PasswordResult{}, nil
	}
	err = s.bind.do(ctx, func(c *ldap.Conn) error { return c.Bind(entry.DN, password) })
	var le *ldap.Error
	switch {
	case err == nil:
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return auth.PasswordResult{}, nil
	case errors.As(err, &le) && le.ResultCode != ldap.ErrorNetwork && le.ResultCode < 200:
		// The server refused (locked, expired, unwilling): a wrong password.
		s.log.Info("ldap: bind refused", "user", user, "code", le.ResultCode)
		return auth.PasswordResult{}, nil
	default:
		return auth.PasswordResult{}, err
	}
	groups, err := s.groups(ctx, user, entry)
	if err != nil {
		return auth.PasswordResult{}, err
	}
	return auth.PasswordResult{OK: true, Groups: groups}, nil
}

// adDisabled reports Active Directory's ACCOUNTDISABLE bit (0x2) of
// userAccountControl.
func adDisabled(e *ldap.Entry) bool {
	v := e.GetAttributeValue("userAccountControl")
	if v == "" {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err != nil || n&2 != 0 // unparsable: fail closed
}

// groups are the group names from GroupAttribute and from GroupFilter.
func (s *Source) groups(ctx context.Context, user string, e *ldap.Entry) ([]string, error) {
	var out []string
	if s.opt.GroupAttribute != "" {
		for _, dn := range e.GetAttributeValues(s.opt.GroupAttribute) {
			if g := firstRDNValue(dn); g != "" {
				out = append(out, g)
			}
		}
	}
	if s.opt.GroupFilter == "" {
		return out, nil
	}
	filter := strings.NewReplacer("{user}", ldap.EscapeFilter(user), "{dn}", ldap.EscapeFilter(e.DN)).Replace(s.opt.GroupFilter)
	req := ldap.NewSearchRequest(s.opt.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1000, 0, false, filter, []string{"cn"}, nil)
	var sr *ldap.SearchResult
	err := s.search.do(ctx, func(c *ldap.Conn) (err error) { sr, err = c.Search(req); return err })
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("group search: %w", err)
	}
	if sr != nil {
		for _, g := range sr.Entries {
			if cn := g.GetAttributeValue("cn"); cn != "" {
				out = append(out, cn)
			}
		}
	}
	return out, nil
}

// firstRDNValue is "vpn" for "cn=vpn,ou=groups,dc=example,dc=com".
func firstRDNValue(dn string) string {
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return ""
	}
	return d.RDNs[0].Attributes[0].Value
}

// pool is a bounded set of connections for one purpose: searches (bound
// as the service account) or user binds (each bind replaces the last).
type pool struct {
	s       *Source
	service bool
	slots   chan struct{} // PoolSize tokens: connections in use or idle
	idle    chan *ldap.Conn
}

func newPool(s *Source, service bool) *pool {
	return &pool{s: s, service: service,
		slots: make(chan struct{}, s.opt.PoolSize), idle: make(chan *ldap.Conn, s.opt.PoolSize)}
}

// do runs op on a pooled connection. A connection that breaks is dropped
// and op runs again on a fresh one (the next URL if this server is down),
// until ctx ends: failover within the request's budget.
func (p *pool) do(ctx context.Context, op func(*ldap.Conn) error) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a connection: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-p.slots }()
	var last error
	for range len(p.s.opt.URLs) + 1 {
		var c *ldap.Conn
		select {
		case c = <-p.idle:
		default:
			var err error
			if c, err = p.dial(ctx); err != nil {
				return err
			}
		}
		if dl, ok := ctx.Deadline(); ok {
			c.SetTimeout(time.Until(dl))
		}
		err := op(c)
		if !isNetwork(err) {
			p.idle <- c // never blocks: a slot is held
			return err
		}
		c.Close()
		p.s.serverFails.Add(1)
		p.s.log.Warn("ldap: connection failed; trying another", "err", err)
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, last)
}

// isNetwork reports an error that is not an answer from the server (an
// LDAP result code): the connection broke, the read failed, a timeout.
func isNetwork(err error) bool {
	if err == nil {
		return false
	}
	var le *ldap.Error
	return !errors.As(err, &le) || le.ResultCode == ldap.ErrorNetwork || le.ResultCode >= 200
}

// dial connects to the first URL that answers, with TLS as configured, and
// binds as the service account for a search connection.
func (p *pool) dial(ctx context.Context) (*ldap.Conn, error) {
	var errs []error
	for i, raw := range p.s.opt.URLs {
		dl, ok := ctx.Deadline()
		if !ok || time.Until(dl) <= 0 {
			errs = append(errs, ctx.Err())
			break
		}
		c, err := p.dialOne(raw, time.Until(dl))
		if err == nil {
			return c, nil
		}
		p.s.serverFails.Add(1)
		p.s.log.Warn("ldap: server unreachable", "url", raw, "next", i+1 < len(p.s.opt.URLs), "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", raw, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

func (p *pool) dialOne(raw string, budget time.Duration) (*ldap.Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	tc := p.s.tls.Clone()
	tc.ServerName = u.Hostname()
	c, err := ldap.DialURL(raw, ldap.DialWithDialer(&net.Dialer{Timeout: budget}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(budget)
	if u.Scheme == "ldap" && p.s.opt.StartTLS {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	if p.service && p.s.opt.BindDN != "" {
		if err := c.Bind(p.s.opt.BindDN, p.s.opt.BindPassword); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as the service account: %w", err)
		}
	}
	return c, nil
}

func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close()
		default:
			return
		}
	}
}
