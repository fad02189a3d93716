package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDSNHasPassword(t *testing.T) {
	tests := []struct {
		dsn  string
		want bool
	}{
		{"postgres://otpgate:s3cret@db/otpgate", true},
		{"postgresql://otpgate:s3cret@db1,db2/otpgate?target_session_attrs=read-write", true},
		{"postgres://otpgate@db/otpgate?password=s3cret", true},
		{"postgres://otpgate@db/otpgate?sslmode=require&PASSWORD=s3cret", true},
		{"postgres://otpgate:@db/otpgate", false}, // empty password: nothing to hide
		{"postgres://otpgate@db1,db2/otpgate?target_session_attrs=read-write", false},
		{"postgres://db/otpgate?passfile=/etc/otpgate/pgpass", false},
		{"host=db user=otpgate password=s3cret dbname=otpgate", true},
		{"host=db user=otpgate PASSWORD=s3cret", true},
		{"host=db user=otpgate password = s3cret", true},
		{"host=db password\t=\t's3 cret'", true},
		{"host=db password='it''s' user=otpgate", true},
		{`host=db password='a\'b' user=otpgate`, true},
		{"host=db user=otpgate sslkey=/k.pem sslpassword=pass", true},
		{"postgres://otpgate@db/otpgate?sslkey=/k.pem&sslpassword=pass", true},
		{"host=db user=otpgate dbname=otpgate", false},
		{"host=db passfile=/etc/otpgate/pgpass", false},
		{"host=db password=''", false},
		{"host=db application_name='password=x'", false},
		{"host=db user=password", false},
		{"postgres://otpgate:s3cret@[::1/otpgate", true}, // url.Parse fails; the userinfo still counts
		{"postgres://otpgate@db:port/otpgate", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := dsnHasPassword(tt.dsn); got != tt.want {
			t.Errorf("dsnHasPassword(%q) = %v, want %v", tt.dsn, got, tt.want)
		}
	}
}

// TestInlineDSNPasswordFollowsSecretFileRule: a DSN written inline with a
// password in it is a secret in radiusd.toml like an inline client secret:
// refused while others can read the file, warned about otherwise, in URL
// and keyword form alike. The error never shows the DSN.
func TestInlineDSNPasswordFollowsSecretFileRule(t *testing.T) {
	const password = "s3cret-pg-pw"
	tests := []struct {
		name    string
		dsn     string
		mode    os.FileMode
		refused bool
		warned  bool
	}{
		{"url 0600", "postgres://otpgate:" + password + "@db/otpgate", 0o600, false, true},
		{"url 0640", "postgres://otpgate:" + password + "@db/otpgate", 0o640, false, true},
		{"url 0644", "postgres://otpgate:" + password + "@db/otpgate", 0o644, true, false},
		{"url query 0644", "postgres://otpgate@db/otpgate?password=" + password, 0o644, true, false},
		{"keyword 0600", "host=db user=otpgate password=" + password, 0o600, false, true},
		{"keyword 0644", "host=db user=otpgate Password = " + password, 0o644, true, false},
		{"url without password 0644", "postgres://otpgate@db1,db2/otpgate?target_session_attrs=read-write", 0o644, false, false},
		{"keyword without password 0644", "host=db user=otpgate dbname=otpgate", 0o644, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "vpn.secret"), []byte("file-secret-0123456789abcdef\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "radiusd.toml")
			text := fmt.Sprintf("version = 1\ndata_dir = \"data\"\n[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\nsecret_file = \"vpn.secret\"\n[store]\nbackend = \"postgres\"\ndsn = %q\n", tt.dsn)
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tt.refused {
				msg := fmt.Sprint(err)
				for _, w := range []string{"store.dsn: " + p + " holds a password inline and is readable by others (mode 0644); run: chmod 640", "or move the DSN into dsn_file"} {
					if !strings.Contains(msg, w) {
						t.Errorf("Load = %v\nwant it to contain %q", err, w)
					}
				}
				if strings.Contains(msg, password) || strings.Contains(msg, "db/otpgate") {
					t.Errorf("the error shows the DSN: %v", err)
				}
				if _, err := LoadWithoutSecrets(p); err != nil {
					t.Errorf("LoadWithoutSecrets = %v; the CLI reads no secret and needs no such rule", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load = %v, want it accepted", err)
			}
			warned := strings.Contains(strings.Join(c.Warnings, "\n"), "store.dsn: holds a password in the config file")
			if warned != tt.warned {
				t.Errorf("Warnings = %q, want the dsn password warning: %v", c.Warnings, tt.warned)
			}
			for _, w := range c.Warnings {
				if strings.Contains(w, password) {
					t.Errorf("a warning shows the password: %q", w)
				}
			}
		})
	}
}

// TestInlineSecretsListed: a config with a client secret and a DSN
// password inline names both and both fixes.
func TestInlineSecretsListed(t *testing.T) {
	text := minimal + "[store]\nbackend = \"postgres\"\ndsn = \"postgres://otpgate:pw@db/otpgate\"\n"
	p := writeConfig(t, text)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	msg := fmt.Sprint(err)
	for _, w := range []string{"client[0].secret (also store.dsn): " + p + " holds the secret inline", "move the secret into a secret_file", "the DSN into dsn_file"} {
		if !strings.Contains(msg, w) {
			t.Errorf("Load = %v\nwant it to contain %q", err, w)
		}
	}
}
