package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/pamhelper"
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
	for _, f := range []string{"radiusd.toml", "packaging/pam_radius_auth.conf", "docs/ssh.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		found := 0
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
		if found == 0 {
			t.Errorf("%s: no pam_radius_auth client example (require_message_authenticator = false); want one in each of the 3 files", f)
		}
	}
}

// TestSSHWayOneInstallsWhatPAMNeeds: way 1 of the SSH guide, for a host
// without the package, says how to build otpgate-pam and installs every
// file the PAM stack needs: the helper where the stack runs it, its
// pam.toml where it reads it, and the stack itself.
func TestSSHWayOneInstallsWhatPAMNeeds(t *testing.T) {
	root := repoRoot(t)
	guide, err := os.ReadFile(filepath.Join(root, "docs/ssh.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(guide), "## On the SSH host, way 1")
	if !ok {
		t.Fatal("docs/ssh.md has no \"On the SSH host, way 1\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	stack, err := os.ReadFile(filepath.Join(root, "packaging/pam.d/otpgate"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^auth\s.*pam_exec\.so.*\s(/\S+)\s*$`).FindStringSubmatch(string(stack))
	if m == nil {
		t.Fatal("packaging/pam.d/otpgate runs no helper through pam_exec")
	}
	for _, dst := range []string{m[1], pamhelper.DefaultConfigPath, "/etc/pam.d/otpgate"} {
		install := regexp.MustCompile(`(?m)^\s+(?:sudo )?(?:install|cp)\s.*\s` + regexp.QuoteMeta(dst) + `\s*$`)
		if !install.MatchString(section) {
			t.Errorf("way 1 has no install (or cp) command that puts %s in place", dst)
		}
	}
	if !strings.Contains(section, "make build") && !strings.Contains(section, "./cmd/otpgate-pam") {
		t.Error("way 1 does not say how to build otpgate-pam")
	}
}
