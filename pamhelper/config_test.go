package pamhelper

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

func writeFile(t *testing.T, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	const good = `servers = ["127.0.0.1:1812", "[::1]:1812"]
secret = "s3cret"
timeout = "2s"
retries = 1
nas_identifier = "web1"
`
	tests := []struct {
		name    string
		body    string
		mode    os.FileMode
		secret  string // contents of secret.txt, written with mode 0600 when set
		wantErr string // substring; "" means success
	}{
		{name: "good", body: good, mode: 0o600},
		{name: "owner read-only", body: good, mode: 0o400},
		{name: "world-readable", body: good, mode: 0o644, wantErr: "has mode 0644"},
		{name: "group-readable", body: good, mode: 0o640, wantErr: "has mode 0640"},
		{name: "others-writable", body: good, mode: 0o602, wantErr: "has mode 0602"},
		{name: "unknown key", body: good + "servr = \"x\"\n", mode: 0o600, wantErr: "unknown key(s) servr"},
		{name: "unknown table", body: good + "[extra]\nfoo = 1\n", mode: 0o600, wantErr: "unknown key(s) extra"},
		{name: "missing secret", body: `servers = ["127.0.0.1:1812"]`, mode: 0o600, wantErr: "missing secret"},
		{name: "no servers", body: `secret = "x"`, mode: 0o600, wantErr: "no servers"},
		{name: "empty servers", body: "servers = []\nsecret = \"x\"", mode: 0o600, wantErr: "no servers"},
		{name: "server without port", body: "servers = [\"127.0.0.1\"]\nsecret = \"x\"", mode: 0o600, wantErr: "not host:port"},
		{name: "secret and secret_file", body: "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\nsecret_file = \"secret.txt\"", mode: 0o600, secret: "y", wantErr: "not both"},
		{name: "secret_file", body: "servers = [\"127.0.0.1:1812\"]\nsecret_file = \"secret.txt\"", mode: 0o600, secret: "from-file\n"},
		{name: "secret_file missing", body: "servers = [\"127.0.0.1:1812\"]\nsecret_file = \"nope.txt\"", mode: 0o600, wantErr: "nope.txt"},
		{name: "timeout too long", body: "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\ntimeout = \"2m\"", mode: 0o600, wantErr: "timeout"},
		{name: "timeout not a duration", body: "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\ntimeout = \"soon\"", mode: 0o600, wantErr: `invalid TOML on line 3 (after key "timeout")`},
		{name: "negative retries", body: "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\nretries = -1", mode: 0o600, wantErr: "retries"},
		{name: "not TOML", body: "servers = [", mode: 0o600, wantErr: "invalid TOML on line 1"},
		// Parse errors quote the text they choke on; it must not reach the log.
		{name: "unquoted secret", body: "secret = s3cret\n", mode: 0o600, wantErr: `invalid TOML on line 1 (after key "secret")`},
		{name: "unterminated secret", body: "servers = []\nsecret = \"s3cret\n", mode: 0o600, wantErr: "invalid TOML on line 2"},
		{name: "secret of the wrong type", body: "servers = [\"127.0.0.1:1812\"]\nsecret = [\"s3cret\"]\n", mode: 0o600, wantErr: "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.secret != "" {
				writeFile(t, dir, "secret.txt", tt.secret, 0o600)
			}
			p := writeFile(t, dir, "pam.toml", tt.body, tt.mode)
			c, err := LoadConfig(p, os.Geteuid())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig() error = %v; want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "from-file") {
					t.Errorf("LoadConfig() error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig() error = %v", err)
			}
			if c.Secret == "" || len(c.Servers) == 0 || c.Timeout.Duration <= 0 || c.NASIdentifier == "" {
				t.Errorf("LoadConfig() = %+v; want secret, servers, timeout and nas_identifier set", c)
			}
		})
	}
}

func TestLoadConfigDefaultsAndValues(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "secret.txt", "from-file\r\n", 0o600)
	p := writeFile(t, dir, "pam.toml", "servers = [\"127.0.0.1:1812\"]\nsecret_file = \"secret.txt\"\n", 0o600)
	c, err := LoadConfig(p, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret != "from-file" {
		t.Errorf("secret from secret_file has %d bytes; want 9 (CRLF dropped)", len(c.Secret))
	}
	if c.Timeout.Duration != DefaultTimeout || c.RetryCount() != DefaultRetries {
		t.Errorf("defaults = timeout %s, retries %d; want %s, %d", c.Timeout.Duration, c.RetryCount(), DefaultTimeout, DefaultRetries)
	}

	p = writeFile(t, dir, "zero.toml", "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\nretries = 0\ntimeout = \"250ms\"\n", 0o600)
	c, err = LoadConfig(p, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	if c.RetryCount() != 0 || c.Timeout.Duration != 250*time.Millisecond {
		t.Errorf("retries = 0, timeout = 250ms read as %d, %s", c.RetryCount(), c.Timeout.Duration)
	}
}

// TestSecretFileTrimMatchesDaemon reads one secret_file through both
// pamhelper.LoadConfig and otpgated's config.Load: a file shared by the PAM
// host and the daemon must give the same secret, whatever whitespace it has.
func TestSecretFileTrimMatchesDaemon(t *testing.T) {
	const secret = "0123456789abcdef-shared"
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"no newline", secret, secret},
		{"one newline", secret + "\n", secret},
		{"crlf", secret + "\r\n", secret},
		{"only one newline dropped", secret + "\n\n", secret + "\n"},
		{"trailing space kept", secret + " \n", secret + " "},
		{"leading space kept", "  " + secret + "\n", "  " + secret},
		{"tab kept", secret + "\t", secret + "\t"},
		{"lone cr dropped", secret + "\r", secret},
		{"cr before crlf kept", secret + "\r\r\n", secret + "\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "shared.secret", tt.content, 0o600)
			p := writeFile(t, dir, "pam.toml", "servers = [\"127.0.0.1:1812\"]\nsecret_file = \"shared.secret\"\n", 0o600)
			c, err := LoadConfig(p, os.Geteuid())
			if err != nil {
				t.Fatal(err)
			}
			if c.Secret != tt.want {
				t.Errorf("pamhelper secret = %q, want %q", c.Secret, tt.want)
			}
			rp := writeFile(t, dir, "radiusd.toml", "version = 1\n[[client]]\nname = \"pam\"\naddress = \"127.0.0.1\"\nsecret_file = \"shared.secret\"\n", 0o600)
			dc, err := config.Load(rp)
			if err != nil {
				t.Fatalf("otpgated config.Load: %v", err)
			}
			if got := dc.Clients[0].Secret; got != c.Secret {
				t.Errorf("otpgated reads %q, otpgate-pam reads %q from the same secret_file", got, c.Secret)
			}
		})
	}
}

func TestLoadConfigOwner(t *testing.T) {
	testtool.RequireRoot(t, "to chown the file to another user")
	dir := t.TempDir()
	p := writeFile(t, dir, "pam.toml", "servers = [\"127.0.0.1:1812\"]\nsecret = \"x\"\n", 0o600)
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p, 0); err == nil || !strings.Contains(err.Error(), "not root") {
		t.Fatalf("LoadConfig(file owned by 65534) as root: error = %v; want 'not root'", err)
	}
	// A non-root caller (e.g. a screen locker running as the user) may own it.
	if _, err := LoadConfig(p, 65534); err != nil {
		t.Fatalf("LoadConfig(file owned by 65534) as 65534: %v", err)
	}

	sp := writeFile(t, dir, "secret.txt", "x", 0o600)
	if err := os.Chown(sp, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	p = writeFile(t, dir, "pam2.toml", "servers = [\"127.0.0.1:1812\"]\nsecret_file = \"secret.txt\"\n", 0o600)
	if _, err := LoadConfig(p, 0); err == nil || !strings.Contains(err.Error(), "not root") {
		t.Fatalf("LoadConfig(secret_file owned by 65534) as root: error = %v; want 'not root'", err)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "absent.toml"), 0); err == nil {
		t.Fatal("LoadConfig(absent file) succeeded")
	}
}

// TestSamplePamToml loads packaging/pam.toml (installed as
// /etc/otpgate/pam.toml) so the sample can never rot.
func TestSamplePamToml(t *testing.T) {
	b, err := os.ReadFile("../packaging/pam.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, t.TempDir(), "pam.toml", string(b), 0o600)
	c, err := LoadConfig(p, os.Geteuid())
	if err != nil {
		t.Fatalf("packaging/pam.toml: %v", err)
	}
	if len(c.Servers) != 1 || c.Timeout.Duration != DefaultTimeout || c.RetryCount() != DefaultRetries {
		t.Errorf("packaging/pam.toml = servers %v, timeout %s, retries %d; want one server and the defaults spelled out",
			c.Servers, c.Timeout.Duration, c.RetryCount())
	}
}
