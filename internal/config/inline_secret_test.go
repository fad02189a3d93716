package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestInlineSecretFollowsSecretFileRule: a shared secret written inline in
// radiusd.toml is held to the rule a secret_file is: the file may be read
// by its group (root:otpgate 0640) but not by others, and written by
// nobody but its owner. The same modes give the same verdict both ways;
// LoadWithoutSecrets (the CLI, which uses no secret) does not care.
func TestInlineSecretFollowsSecretFileRule(t *testing.T) {
	const secret = "inline-secret-0123456789abcdef"
	tests := []struct {
		mode os.FileMode
		want string // "" = accepted
	}{
		{0o600, ""},
		{0o640, ""},
		{0o644, "is readable by others (mode 0644)"},
		{0o604, "is readable by others (mode 0604)"},
		{0o660, "is writable by group or others (mode 0660)"},
		{0o664, "is readable by others (mode 0664)"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, text string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tt.mode); err != nil {
					t.Fatal(err)
				}
				return p
			}
			head := "version = 1\n[[client]]\nname = \"vpn\"\naddress = \"10.1.0.0/16\"\n"
			inline := write("inline.toml", head+"secret = \""+secret+"\"\n")
			write("vpn.secret", secret+"\n")
			fromFile := filepath.Join(dir, "file.toml")
			if err := os.WriteFile(fromFile, []byte(head+"secret_file = \"vpn.secret\"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, inlineErr := Load(inline)
			_, fileErr := Load(fromFile)
			if (inlineErr == nil) != (fileErr == nil) {
				t.Errorf("inline and secret_file disagree at mode %04o:\n inline: %v\n file:   %v", tt.mode, inlineErr, fileErr)
			}
			if tt.want == "" {
				if inlineErr != nil {
					t.Errorf("Load = %v, want it accepted", inlineErr)
				}
				return
			}
			msg := fmt.Sprint(inlineErr)
			for _, w := range []string{"client[0].secret: ", inline + " holds the secret inline and " + tt.want, "chmod", "or move the secret into a secret_file"} {
				if !strings.Contains(msg, w) {
					t.Errorf("Load = %v\nwant it to contain %q", inlineErr, w)
				}
			}
			if strings.Contains(msg, secret) {
				t.Error("the error shows the secret")
			}
			if _, err := LoadWithoutSecrets(inline); err != nil {
				t.Errorf("LoadWithoutSecrets = %v; the CLI reads no secret and needs no such rule", err)
			}
		})
	}
}

// TestSampleRefusedWhileOthersCanRead: the sample radiusd.toml, as a git
// checkout leaves it (0644), is refused for its inline secret with the
// chmod that fixes it; `make run` applies that chmod first.
func TestSampleRefusedWhileOthersCanRead(t *testing.T) {
	p := testtool.SampleConfig(t, "../../radiusd.toml", 0o644)
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "client[0].secret: "+p+" holds the secret inline and is readable by others (mode 0644); run: chmod 640") {
		t.Errorf("Load(sample, 0644) = %v, want the inline-secret refusal", err)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "chmod go-rwx radiusd.toml") {
		t.Error("make run does not make the sample private before it runs otpgated on it")
	}
}
