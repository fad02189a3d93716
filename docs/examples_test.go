package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPamRadiusExamplesAgree: every example [[client]] entry for Debian's
// pam_radius_auth (the entries with require_message_authenticator = false:
// it sends no Message-Authenticator) uses the mode the SSH guide explains,
// challenge (password first, then the code at a second prompt). The
// sample radiusd.toml once said append.
func TestPamRadiusExamplesAgree(t *testing.T) {
	root := repoRoot(t)
	block := regexp.MustCompile(`\[\[client\]\](?:\n[ \t#]*[a-z_]+ *= *[^\n]*)+`)
	mode := regexp.MustCompile(`(?m)^[ \t#]*mode *= *"([a-z-]+)"`)
	found := 0
	for _, f := range []string{"radiusd.toml", "packaging/pam_radius_auth.conf", "docs/ssh.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range block.FindAllString(string(b), -1) {
			if !strings.Contains(blk, "require_message_authenticator = false") {
				continue
			}
			found++
			m := mode.FindStringSubmatch(blk)
			if m == nil || m[1] != "challenge" {
				t.Errorf("%s: the pam_radius_auth client example %q uses mode %v; the SSH guide (way 2) says challenge", f, blk, m)
			}
		}
	}
	if found < 3 {
		t.Errorf("found %d pam_radius_auth client examples, want one in each of the 3 files", found)
	}
}
