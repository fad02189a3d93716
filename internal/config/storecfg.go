package config

import (
	"fmt"
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

	dsnRead bool // DSN was read from DSNFile by Load
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
	dsn, err := readSecretFile(s.DSNFile)
	if err != nil {
		return "", fmt.Errorf("store.dsn_file: %w", err)
	}
	if dsn == "" {
		return "", fmt.Errorf("store.dsn_file: %s is empty", s.DSNFile)
	}
	return dsn, nil
}

func (c *Config) loadStoreSecrets() []string {
	if !c.Store.Postgres() || c.Store.DSN != "" {
		return nil
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
		case c.Store.DSN != "" && c.Store.DSNFile != "" && !c.Store.dsnFromFile():
			bad("store", "set dsn_file or dsn, not both")
		}
		if c.Store.DSN != "" && !c.Store.dsnFromFile() && strings.Contains(c.Store.DSN, "password") {
			warn("store.dsn", "holds a password in the config file; put the DSN in dsn_file (mode 0600) instead")
		}
	default:
		bad("store.backend", "%q is not one of %s, %s", c.Store.Backend, BackendBbolt, BackendPostgres)
	}
}

// dsnFromFile: DSN was filled from DSNFile by Load (both set, one source).
func (s StoreConfig) dsnFromFile() bool { return s.DSNFile != "" && s.DSN != "" && s.dsnRead }
