package config

import (
	"net/url"
	"strings"
)

// Store backends ([store] backend).
const (
	BackendBbolt    = "bbolt"    // embedded, one node (default)
	BackendPostgres = "postgres" // several nodes on one PostgreSQL
)

// StoreConfig is [store]: where users live.
type StoreConfig struct {
	Backend string `toml:"backend"`  // bbolt (default) | postgres
	DSN     string `toml:"dsn"`      // PostgreSQL connection string; after Load: also holds what DSNFile holds
	DSNFile string `toml:"dsn_file"` // file holding the DSN (same rules as secret_file); after Load: absolute path

	dsnRead bool // DSN was read from DSNFile by Load (so both are set)
}

// Postgres reports whether the store is PostgreSQL.
func (s StoreConfig) Postgres() bool { return s.Backend == BackendPostgres }

// ReadDSN returns the connection string: dsn, else the contents of
// dsn_file (which must be readable by root and otpgate only). The CLI,
// which loads the config without secrets, calls it when it opens the
// store directly.
func (s StoreConfig) ReadDSN() (string, error) {
	if s.DSN != "" || s.DSNFile == "" {
		return s.DSN, nil
	}
	return readSecretFile("store.dsn_file", s.DSNFile)
}

func (c *Config) loadStoreSecrets() []string {
	if !c.Store.Postgres() || c.Store.DSN != "" || c.Store.DSNFile == "" {
		return nil // inline, or neither: validate reports a missing one
	}
	dsn, err := c.Store.ReadDSN()
	if err != nil {
		return []string{err.Error()}
	}
	c.Store.DSN, c.Store.dsnRead = dsn, true
	return nil
}

func (c *Config) validateStore(bad, warn func(key, format string, args ...any)) {
	switch c.Store.Backend {
	case BackendBbolt:
		if c.Store.DSN != "" || c.Store.DSNFile != "" {
			warn("store", "dsn and dsn_file have no effect unless backend = \"postgres\"")
		}
	case BackendPostgres:
		switch {
		case c.Store.DSN == "" && c.Store.DSNFile == "":
			bad("store", "backend = \"postgres\" needs dsn_file (or dsn)")
		case c.Store.DSN != "" && c.Store.DSNFile != "" && !c.Store.dsnRead:
			bad("store", "set dsn_file or dsn, not both")
		}
		if c.Store.DSN != "" && !c.Store.dsnRead && dsnHasPassword(c.Store.DSN) {
			warn("store.dsn", "holds a password in the config file; put the DSN in dsn_file (mode 0600) instead")
		}
	default:
		bad("store.backend", "%q is not one of %s, %s", c.Store.Backend, BackendBbolt, BackendPostgres)
	}
}

// dsnHasPassword reports whether a PostgreSQL connection string carries a
// non-empty password: in a URL (postgres://user:password@host/db, or a
// password or sslpassword query parameter) or as the password or
// sslpassword keyword of the libpq keyword = value form. Keywords are
// matched regardless of case; the
// spaces libpq allows around '=' and quoted values are understood, so
// "application_name='password=x'" holds none.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return urlDSNHasPassword(dsn)
	}
	return keywordDSNHasPassword(dsn)
}

func urlDSNHasPassword(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil {
		// pgx refuses it too, but the file still exposes what it holds:
		// judge the user info by hand.
		authority := dsn[strings.Index(dsn, "://")+3:]
		if end := strings.IndexAny(authority, "/?#"); end >= 0 {
			authority = authority[:end]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, _ := strings.Cut(authority[:at], ":"); pw != "" {
				return true
			}
		}
		return strings.Contains(strings.ToLower(dsn), "password=")
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		return true
	}
	for k, vs := range u.Query() {
		if isPasswordKey(k) {
			for _, v := range vs {
				if v != "" {
					return true
				}
			}
		}
	}
	return false
}

// isPasswordKey: the DSN keys whose value is a secret, the password and
// the passphrase of the client's TLS key.
func isPasswordKey(k string) bool {
	return strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword")
}

// keywordDSNHasPassword walks "key = value" pairs as libpq reads them:
// spaces around '=', values optionally in single quotes, backslash
// escapes.
func keywordDSNHasPassword(dsn string) bool {
	s := dsn
	skipSpace := func() {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
	}
	for {
		skipSpace()
		if s == "" {
			return false
		}
		end := strings.IndexAny(s, "= \t\n\r\f\v")
		if end < 0 {
			return false // a keyword without a value: libpq refuses it
		}
		key := s[:end]
		s = s[end:]
		skipSpace()
		if !strings.HasPrefix(s, "=") {
			// Malformed: judge it by the word alone rather than let it by.
			return strings.Contains(strings.ToLower(dsn), "password")
		}
		s = s[1:]
		skipSpace()
		var value strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for s != "" && !closed {
				switch {
				case s[0] == '\\' && len(s) > 1:
					value.WriteByte(s[1])
					s = s[2:]
				case s[0] == '\'':
					closed = true
					s = s[1:]
				default:
					value.WriteByte(s[0])
					s = s[1:]
				}
			}
		} else {
			for s != "" && !strings.ContainsRune(" \t\n\r\f\v", rune(s[0])) {
				if s[0] == '\\' && len(s) > 1 {
					s = s[1:]
				}
				value.WriteByte(s[0])
				s = s[1:]
			}
		}
		if isPasswordKey(key) && value.Len() > 0 {
			return true
		}
	}
}
