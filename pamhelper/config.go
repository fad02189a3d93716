package pamhelper

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultConfigPath is where otpgate-pam looks for its config without -config.
const DefaultConfigPath = "/etc/otpgate/pam.toml"

// Defaults for keys left out of pam.toml.
const (
	DefaultTimeout = 3 * time.Second
	DefaultRetries = 2
	MaxTimeout     = 60 * time.Second
	MaxRetries     = 10
	maxSecretLen   = 1024
)

// Config is pam.toml. Every key is documented in packaging/pam.toml.
type Config struct {
	// Servers are "host:port" of otpgated RADIUS listeners, tried in order.
	Servers []string `toml:"servers"`
	// Secret is the RADIUS shared secret; SecretFile names a file holding it
	// instead (one line: one trailing "\n" or "\r\n" is dropped, nothing
	// else, exactly as otpgated reads a client's secret_file, so both can
	// share one file). Exactly one is set.
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
	// Timeout is how long to wait for an answer to one transmission.
	Timeout Duration `toml:"timeout"`
	// Retries is how many times one packet is re-sent to one server after a
	// timeout before the next server is tried.
	Retries *int `toml:"retries"`
	// NASIdentifier is sent as NAS-Identifier; the default is the host name.
	NASIdentifier string `toml:"nas_identifier"`

	// Path is the file the config came from (not a key).
	Path string `toml:"-"`
}

// Duration is a time.Duration written as a TOML string such as "3s".
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

// RetryCount returns Retries with its default applied.
func (c *Config) RetryCount() int {
	if c.Retries == nil {
		return DefaultRetries
	}
	return *c.Retries
}

// LoadConfig reads and validates pam.toml. It refuses a file that group or
// others can access, and, when euid is 0, a file not owned by root: the file
// holds the shared secret, and a file someone else can write decides where
// passwords go. The same holds for secret_file.
func LoadConfig(path string, euid int) (*Config, error) {
	raw, err := readPrivateFile(path, euid)
	if err != nil {
		return nil, err
	}
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(raw)).Decode(&c)
	if err != nil {
		// A parse error's message quotes the text it choked on, which may
		// be the secret: report only where it is.
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("pamhelper: config %s: invalid TOML on line %d (after key %q)", path, pe.Position.Line, pe.LastKey)
		}
		return nil, fmt.Errorf("pamhelper: config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, 0, len(und))
		for _, k := range und {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("pamhelper: config %s: unknown key(s) %s", path, strings.Join(keys, ", "))
	}
	c.Path = path
	if c.SecretFile != "" && !filepath.IsAbs(c.SecretFile) {
		c.SecretFile = filepath.Join(filepath.Dir(path), c.SecretFile)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("pamhelper: config %s: %w", path, err)
	}
	if c.SecretFile != "" {
		b, err := readPrivateFile(c.SecretFile, euid)
		if err != nil {
			return nil, fmt.Errorf("pamhelper: config %s: secret_file: %w", path, err)
		}
		c.Secret = trimSecretFile(b)
		if c.Secret == "" {
			return nil, fmt.Errorf("pamhelper: config %s: secret_file %s is empty", path, c.SecretFile)
		}
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if c.NASIdentifier == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			c.NASIdentifier = h
		} else {
			c.NASIdentifier = "otpgate-pam"
		}
	}
	return &c, nil
}

// trimSecretFile returns a secret_file's contents without one trailing
// "\n" and then one trailing "\r": the same rule as otpgated's
// config.readSecretFile. Any other whitespace is part of the secret; trimming
// more here than there would make a shared file give two different secrets.
func trimSecretFile(b []byte) string {
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r")
}

func (c *Config) validate() error {
	if len(c.Servers) == 0 {
		return errors.New(`no servers: set servers = ["host:port", ...]`)
	}
	for _, s := range c.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("servers: %q is not host:port", s)
		}
	}
	switch {
	case c.Secret != "" && c.SecretFile != "":
		return errors.New("set secret or secret_file, not both")
	case c.Secret == "" && c.SecretFile == "":
		return errors.New("missing secret: set secret or secret_file")
	case len(c.Secret) > maxSecretLen:
		return fmt.Errorf("secret is longer than %d bytes", maxSecretLen)
	}
	if c.Timeout.Duration < 0 || c.Timeout.Duration > MaxTimeout {
		return fmt.Errorf("timeout %s is outside (0, %s]", c.Timeout.Duration, MaxTimeout)
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > MaxRetries) {
		return fmt.Errorf("retries %d is outside [0, %d]", *c.Retries, MaxRetries)
	}
	if len(c.NASIdentifier) > 253 {
		return errors.New("nas_identifier is longer than 253 bytes")
	}
	return nil
}

// readPrivateFile opens path and checks, on the open file, that only its
// owner can access it and that the owner is root when euid is 0.
func readPrivateFile(path string, euid int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pamhelper: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("pamhelper: stat %s: %w", path, err)
	}
	if err := checkPrivate(path, fi, euid); err != nil {
		return nil, err
	}
	const maxFile = 64 << 10
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("pamhelper: read %s: %w", path, err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("pamhelper: %s is larger than %d bytes", path, maxFile)
	}
	return b, nil
}

func checkPrivate(path string, fi os.FileInfo, euid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("pamhelper: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("pamhelper: %s has mode %04o; it holds the shared secret, so group and others must have no access: chmod 600 %s", path, perm, path)
	}
	if euid == 0 {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("pamhelper: %s: cannot read the file owner", path)
		}
		if st.Uid != 0 {
			return fmt.Errorf("pamhelper: %s is owned by uid %d, not root: chown root %s", path, st.Uid, path)
		}
	}
	return nil
}
