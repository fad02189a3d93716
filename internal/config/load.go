package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
)

// DefaultPath is the system-wide config file Find falls back to.
const DefaultPath = "/etc/otpgate/radiusd.toml"

// maxConfigSize bounds what Load reads; a real radiusd.toml is a few KiB.
const maxConfigSize = 4 << 20

// maxSecretFileSize bounds a secret_file.
const maxSecretFileSize = 4096

// Find returns the config file to use: flag when set, else
// /etc/otpgate/radiusd.toml when it exists, else ./radiusd.toml when it
// exists. The installed system's file comes first so that an admin who
// happens to stand in a source checkout (which has a sample radiusd.toml)
// does not edit the checkout's database instead of the real one. The error
// says which files were tried.
//
// A file found without the flag must belong to this user or root and must
// not be writable by group or others: root running otpgate in someone
// else's directory (a home, /tmp) must not pick up a radiusd.toml planted
// there, which would point the CLI at a socket or database of the planter's
// choosing. -config PATH uses any file.
func Find(flag string) (string, error) {
	return FindAmong(flag, DefaultPath, "radiusd.toml")
}

// FindAmong is Find over candidates, in order, instead of DefaultPath and
// ./radiusd.toml: tests put the system file in a temp dir, so that one
// installed on the machine does not change what they see.
func FindAmong(flag string, candidates ...string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			if err := checkImplicit(c, fi); err != nil {
				return "", err
			}
			return c, nil
		}
	}
	tried := make([]string, len(candidates))
	for i, c := range candidates {
		if !filepath.IsAbs(c) && !strings.HasPrefix(c, ".") {
			c = "./" + c
		}
		tried[i] = c
	}
	return "", fmt.Errorf("config: no config file found (tried %s); pass -config PATH", strings.Join(tried, ", "))
}

// checkImplicit refuses a config file found by search (not named with
// -config) that another user could have written.
func checkImplicit(path string, fi os.FileInfo) error {
	shown := path
	if !filepath.IsAbs(shown) && !strings.HasPrefix(shown, ".") {
		shown = "./" + shown
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("config: %s is writable by group or others (mode %04o); refusing to use it without -config (fix: chmod go-w %s)", shown, perm, shown)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if euid := os.Geteuid(); ok && st.Uid != 0 && int(st.Uid) != euid {
		return fmt.Errorf("config: %s belongs to uid %d, not to you (uid %d) or root; refusing to use it without -config (pass -config %s if you trust it)", shown, st.Uid, euid, shown)
	}
	return nil
}

// Load reads, decodes, defaults and validates the config file at path.
// Relative paths in it resolve against the file's directory; secret_file
// contents end up in ClientConfig.Secret. Problems that do not stop the
// daemon are returned in Config.Warnings.
func Load(path string) (*Config, error) {
	return load(path, true)
}

// LoadWithoutSecrets is Load for tools that never speak RADIUS (the otpgate
// CLI): it is as strict, but does not read secret_file files, so an admin
// who may read radiusd.toml but not the secrets can still use it. Clients
// whose secret comes from a file have an empty Secret.
func LoadWithoutSecrets(path string) (*Config, error) {
	return load(path, false)
}

func load(path string, readSecrets bool) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, maxConfigSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c, err := parse(path, data, filepath.Dir(abs), readSecrets)
	if err != nil {
		return nil, err
	}
	if readSecrets {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if p := c.inlineSecretProblem(path, fi.Mode().Perm()); p != "" {
			return nil, &ValidationError{Path: path, Problems: []string{p}}
		}
	}
	c.Path = abs
	return c, nil
}

// inlineSecretProblem holds a config file with secrets written inline to
// the rule a secret_file follows (secretModeProblem): a secret is as
// exposed in one file as in the other. A DSN with a password in it is such
// a secret too. The text names keys, never values.
func (c *Config) inlineSecretProblem(path string, perm os.FileMode) string {
	var keys []string
	for i, cl := range c.Clients {
		if cl.Secret != "" && !cl.secretFromFile {
			keys = append(keys, fmt.Sprintf("client[%d].secret", i))
		}
	}
	clientSecrets := len(keys) > 0
	inlineDSN := c.Store.DSN != "" && !c.Store.dsnRead && dsnHasPassword(c.Store.DSN)
	if inlineDSN {
		keys = append(keys, "store.dsn")
	}
	if len(keys) == 0 {
		return ""
	}
	problem := secretModeProblem(path, perm)
	if problem == "" {
		return ""
	}
	also := ""
	if len(keys) > 1 {
		also = " (also " + strings.Join(keys[1:], ", ") + ")"
	}
	switch {
	case clientSecrets && inlineDSN:
		return fmt.Sprintf("%s%s: %s holds the secret inline and %s, or move the secret into a secret_file and the DSN into dsn_file", keys[0], also, path, problem)
	case inlineDSN:
		return fmt.Sprintf("store.dsn: %s holds a password inline and %s, or move the DSN into dsn_file", path, problem)
	}
	return fmt.Sprintf("%s%s: %s holds the secret inline and %s, or move the secret into a secret_file", keys[0], also, path, problem)
}

// secretModeProblem says what is wrong with the mode of a file that holds
// a shared secret (a secret_file, or radiusd.toml with a secret inline),
// with the fix; "" when nothing is. Others may not read it; group read is
// fine: root:otpgate 0640 lets the daemon's group read a root-owned file,
// as FreeRADIUS does with root:freerad. Only its owner may write it:
// whoever can write it chooses the secret, and can then read the passwords
// of that client's requests.
func secretModeProblem(path string, perm os.FileMode) string {
	switch {
	case perm&0o004 != 0:
		return fmt.Sprintf("is readable by others (mode %04o); run: chmod 640 %s (owner root, group otpgate) or chmod 600 %[2]s", perm, path)
	case perm&0o022 != 0:
		return fmt.Sprintf("is writable by group or others (mode %04o); run: chmod 600 %s", perm, path)
	}
	return ""
}

// parse is Load for a config already in memory: name prefixes error
// messages and baseDir anchors relative paths. It reads secret files when
// readSecrets is set.
func parse(name string, data []byte, baseDir string, readSecrets bool) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, decodeError(err))
	}
	switch {
	case !md.IsDefined("version"):
		return nil, fmt.Errorf("%s: missing \"version = 1\" (the config format version; put it on the first line)", name)
	case c.Version != 1:
		return nil, fmt.Errorf("%s: version = %d is not supported; this otpgated reads version = 1", name, c.Version)
	}
	if unknown := unknownKeys(md, data); len(unknown) > 0 {
		noun := "key"
		if len(unknown) > 1 {
			noun = "keys"
		}
		return nil, fmt.Errorf("%s: unknown %s %s", name, noun, strings.Join(unknown, ", "))
	}
	c.Path = name
	c.resolvePaths(baseDir)
	c.applyDefaults(md.IsDefined)
	var problems []string
	if readSecrets {
		problems = append(problems, c.loadSecrets()...)
		problems = append(problems, c.loadDirectorySecrets()...)
		problems = append(problems, c.loadStoreSecrets()...)
	}
	problems = append(problems, c.checkSystem()...)
	p, warnings := c.validate()
	problems = append(problems, p...)
	if len(problems) > 0 {
		return nil, &ValidationError{Path: name, Problems: problems}
	}
	c.Warnings = warnings
	return &c, nil
}

// ValidationError lists every problem found in a config; each problem starts
// with the key path it is about.
type ValidationError struct {
	Path     string
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Path + ": " + e.Problems[0]
	}
	return fmt.Sprintf("%s: %d problems:\n  %s", e.Path, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// decodeError keeps TOML syntax errors readable without ever echoing a
// secret back: a parse error's message quotes the text it choked on, and
// that text is the value of the last key. The message is shown only when
// the last key is a known key that holds no secret (or a table, or none);
// for client.secret, a misspelt key ("secert", "secret.x", "Secret") or
// anything else unknown, only the line and the key are shown.
func decodeError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" && !showsValue[pe.LastKey] {
			return fmt.Errorf("toml: line %d (last key %q): syntax error (value not shown)", pe.Position.Line, pe.LastKey)
		}
		return errors.New(pe.Error())
	}
	return err
}

// secretKeys are the key paths whose values are never quoted in an error.
var secretKeys = []string{"client.secret"}

// knownKeys is every key path of Config ("radius.listen", "client.name"),
// tables included, without array indexes.
var knownKeys = keyPaths(reflect.TypeFor[Config](), "")

// showsValue is knownKeys without secretKeys.
var showsValue = func() map[string]bool {
	m := make(map[string]bool, len(knownKeys))
	for _, k := range knownKeys {
		if !slices.Contains(secretKeys, k) {
			m[k] = true
		}
	}
	return m
}()

// keyPaths lists the TOML key paths of a struct type.
func keyPaths(typ reflect.Type, prefix string) []string {
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		keys = append(keys, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() {
			keys = append(keys, keyPaths(ft, key+".")...)
		}
	}
	return keys
}

// miscasedKeys returns the keys that match a Config key only when case is
// ignored ("radius.Workers"). BurntSushi/toml decodes them into the field,
// but TOML keys are case-sensitive and the defaults, which look keys up by
// their exact name, would then silently overwrite the value.
func miscasedKeys(md toml.MetaData) []toml.Key {
	var out []toml.Key
	for _, k := range md.Keys() {
		if _, ok := canonicalKey(k); ok {
			out = append(out, k)
		}
	}
	return out
}

// canonicalKey returns the Config key path k matches when case is ignored,
// and whether k differs from it (only in case).
func canonicalKey(k toml.Key) (string, bool) {
	p := strings.Join(k, ".")
	for _, known := range knownKeys {
		if strings.EqualFold(p, known) {
			return known, p != known
		}
	}
	return "", false
}

// unknownKeys names every key that did not map to a Config field, with
// array-of-table indexes ("client[0].secrt"), each once and without the
// children of an already unknown table.
func unknownKeys(md toml.MetaData, data []byte) []string {
	und := append(md.Undecoded(), miscasedKeys(md)...)
	if len(und) == 0 {
		return nil
	}
	var raw map[string]any
	_, _ = toml.Decode(string(data), &raw) // same input decoded fine above
	var out []string
	var parents []toml.Key
	for _, k := range und {
		if slices.ContainsFunc(parents, func(p toml.Key) bool { return isPrefix(p, k) }) {
			continue
		}
		parents = append(parents, k)
		names := expandKey(raw, k, "")
		if len(names) == 0 {
			names = []string{k.String()}
		}
		hint := ""
		if want, ok := canonicalKey(k); ok {
			hint = fmt.Sprintf(" (keys are case-sensitive: %s)", want)
		}
		for _, n := range names {
			q := strconv.Quote(n) + hint
			if !slices.Contains(out, q) {
				out = append(out, q)
			}
		}
	}
	return out
}

func isPrefix(p, k toml.Key) bool {
	return len(p) < len(k) && slices.Equal(p, k[:len(p)])
}

// expandKey finds every concrete occurrence of key in the generic decoding
// v, naming array elements by index.
func expandKey(v any, key toml.Key, prefix string) []string {
	if len(key) == 0 {
		return []string{prefix}
	}
	switch t := v.(type) {
	case map[string]any:
		child, ok := t[key[0]]
		if !ok {
			return nil
		}
		name := toml.Key{key[0]}.String()
		if prefix != "" {
			name = prefix + "." + name
		}
		return expandKey(child, key[1:], name)
	case []map[string]any:
		var out []string
		for i, el := range t {
			out = append(out, expandKey(el, key, fmt.Sprintf("%s[%d]", prefix, i))...)
		}
		return out
	case []any:
		var out []string
		for i, el := range t {
			if m, ok := el.(map[string]any); ok {
				out = append(out, expandKey(m, key, fmt.Sprintf("%s[%d]", prefix, i))...)
			}
		}
		return out
	}
	return nil
}

// resolvePaths makes relative paths absolute against the config file's
// directory, so the daemon's working directory never matters.
func (c *Config) resolvePaths(baseDir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	c.DataDir = abs(c.DataDir)
	c.KeyFile = abs(c.KeyFile)
	c.Control.Socket = abs(c.Control.Socket)
	c.Control.EnrollSocket = abs(c.Control.EnrollSocket)
	c.Web.TLSCert = abs(c.Web.TLSCert)
	c.Web.TLSKey = abs(c.Web.TLSKey)
	if a := c.Log.Audit; a != "stderr" && a != "off" {
		c.Log.Audit = abs(a)
	}
	for i := range c.Clients {
		c.Clients[i].SecretFile = abs(c.Clients[i].SecretFile)
	}
	c.LDAP.BindPasswordFile = abs(c.LDAP.BindPasswordFile)
	c.LDAP.CAFile = abs(c.LDAP.CAFile)
	c.RadiusUpstream.SecretFile = abs(c.RadiusUpstream.SecretFile)
	c.Store.DSNFile = abs(c.Store.DSNFile)
}

// loadSecrets reads every secret_file into Secret. The file must be a
// regular file that neither group nor others can read.
func (c *Config) loadSecrets() []string {
	var problems []string
	for i := range c.Clients {
		cl := &c.Clients[i]
		if cl.SecretFile == "" || cl.Secret != "" {
			continue // none, or both set: validate reports it
		}
		secret, err := readSecretFile(fmt.Sprintf("client[%d].secret_file", i), cl.SecretFile)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		cl.Secret = secret
		cl.secretFromFile = true
	}
	return problems
}

// readSecretFile reads the secret in the file key names: one line, not
// empty. Errors start with key.
func readSecretFile(key, path string) (string, error) {
	s, err := readPrivateFile(path)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: %w", key, err)
	case s == "":
		return "", fmt.Errorf("%s: %s is empty", key, path)
	}
	return s, nil
}

// readPrivateFile reads a regular file that only its owner may write and
// others may not read, less one trailing newline.
func readPrivateFile(path string) (string, error) {
	// Never open a device or FIFO (opening one can block or act).
	if fi, err := os.Stat(path); err != nil {
		return "", err
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	// O_NONBLOCK: a FIFO swapped in since the Stat must not hang the start.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The checks below are on the file that was opened, not the path.
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if problem := secretModeProblem(path, fi.Mode().Perm()); problem != "" {
		return "", fmt.Errorf("%s %s", path, problem)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileSize)
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// checkSystem validates what depends on this machine: the control group.
func (c *Config) checkSystem() []string {
	if c.Control.Group == "" || !validName(c.Control.Group) {
		return nil // validate reports a malformed name
	}
	if _, err := user.LookupGroup(c.Control.Group); err != nil {
		return []string{fmt.Sprintf("control.group: group %q not found on this system", c.Control.Group)}
	}
	return nil
}
