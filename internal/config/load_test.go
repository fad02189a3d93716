package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseErrorsNeverQuoteASecret covers TOML syntax errors whose message
// would quote the offending value: the secret key itself, a misspelt
// secret key, a sub-key of secret and a miscased key are all redacted,
// while ordinary keys keep their helpful message.
func TestParseErrorsNeverQuoteASecret(t *testing.T) {
	const secret = "SuperSecretValue123456"
	head := "version = 1\n[[client]]\nname = \"a\"\naddress = \"10.0.0.1\"\n"
	tests := []struct {
		name, text, want string
	}{
		{"unquoted secret", head + "secret = " + secret + "\n", `last key "client.secret"): syntax error (value not shown)`},
		{"misspelt secret key", head + "secert = " + secret + "\n", `last key "client.secert"): syntax error (value not shown)`},
		{"secret as a table", head + "secret.x = " + secret + "\n", `last key "client.secret.x"): syntax error (value not shown)`},
		{"miscased secret key", head + "Secret = " + secret + "\n", `last key "client.Secret"): syntax error (value not shown)`},
		{"other unknown key", head + "shared_secret = " + secret + "\n", "value not shown"},
		{"inline table", "version = 1\nclient = [{name = \"a\", secrt = " + secret + "}]\n", "value not shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("radiusd.toml", []byte(tt.text), t.TempDir(), true)
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), "SuperSecret") || strings.Contains(err.Error(), "Value123") {
				t.Errorf("error shows the secret: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// A key that holds no secret keeps the parser's message.
	_, err := parse("radiusd.toml", []byte(head+"mode = append\n"), t.TempDir(), true)
	if err == nil || !strings.Contains(err.Error(), `expected value but found "append"`) {
		t.Errorf("error for an unquoted mode = %v, want the parser's message", err)
	}
}

// TestMiscasedKeysRejected: BurntSushi/toml matches struct fields without
// regard to case, so "Workers = 3" was decoded and then overwritten by the
// default, silently. TOML keys are case-sensitive; say so.
func TestMiscasedKeysRejected(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"key", withTop("") + "[radius]\nWorkers = 3\n", `unknown key "radius.Workers" (keys are case-sensitive: radius.workers)`},
		{"table", withTop("") + "[Radius]\nworkers = 3\n", `unknown key "Radius" (keys are case-sensitive: radius)`},
		{"top level", withTop("Issuer = \"x\"\n"), `unknown key "Issuer" (keys are case-sensitive: issuer)`},
		{"client key", minimal + "Mode = \"append\"\n", `unknown key "client[0].Mode" (keys are case-sensitive: client.mode)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse("radiusd.toml", []byte(tt.text), t.TempDir(), true)
			if err == nil {
				t.Fatalf("accepted; workers = %d, issuer %q", c.Radius.Workers, c.Issuer)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestSecretFileWritableByOthers: a secret file that group or others can
// write lets someone else choose the shared secret.
func TestSecretFileWritableByOthers(t *testing.T) {
	const secret = "file-secret-0123456789abcdef"
	setup := func(t *testing.T, mode os.FileMode) string {
		t.Helper()
		dir := t.TempDir()
		secretPath := filepath.Join(dir, "vpn.secret")
		if err := os.WriteFile(secretPath, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(secretPath, mode); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "radiusd.toml")
		text := "version = 1\n[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\nsecret_file = \"vpn.secret\"\n"
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, mode := range []os.FileMode{0o620, 0o602} {
		cfg := setup(t, mode)
		_, err := Load(cfg)
		if err == nil || !strings.Contains(err.Error(), "client[0].secret_file:") || !strings.Contains(err.Error(), "is writable by group or others") {
			t.Errorf("mode %04o: Load = %v, want a writable-by-others error", mode, err)
		}
	}
}

// TestFindRefusesPlantedConfig: without -config, a radiusd.toml that
// another user owns or could have written is refused (root running the CLI
// in someone else's directory must not use their file); -config still
// takes any file.
func TestFindRefusesPlantedConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cands := []string{filepath.Join(dir, "etc-radiusd.toml"), "radiusd.toml"} // as Find has them
	if err := os.WriteFile("radiusd.toml", []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := FindAmong("", cands...); err != nil || got != "radiusd.toml" {
		t.Fatalf("FindAmong(own 0600 file) = %q, %v", got, err)
	}
	if err := os.Chmod("radiusd.toml", 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := FindAmong("", cands...); err == nil || !strings.Contains(err.Error(), "./radiusd.toml is writable by group or others (mode 0666)") {
		t.Errorf("FindAmong(world-writable file) = %v; want a refusal", err)
	}
	if got, err := FindAmong("radiusd.toml", cands...); err != nil || got != "radiusd.toml" {
		t.Errorf("FindAmong with -config = %q, %v; want the flag honoured", got, err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: the owner check is not exercised")
		return
	}
	if err := os.Chmod("radiusd.toml", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown("radiusd.toml", 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := FindAmong("", cands...); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534, not to you (uid 0) or root") {
		t.Errorf("FindAmong(file of another user) = %v; want a refusal", err)
	}
}
