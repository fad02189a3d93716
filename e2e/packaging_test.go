package e2e

// Tests that keep packaging/ honest without installing anything: the
// packaged radiusd.toml loads and its commented defaults are the real
// defaults, and the man pages name every flag and command the binaries
// have. The install test itself is packaging/test-install.sh
// (make package-test).

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/config"
)

const packagedConfig = "../packaging/radiusd.toml"

func TestPackagedConfigLoads(t *testing.T) {
	c, err := config.Load(packagedConfig)
	if err != nil {
		t.Fatalf("packaging/radiusd.toml does not load: %v", err)
	}
	checks := []struct{ what, got, want string }{
		{"data_dir", c.DataDir, "/var/lib/otpgate"},
		{"database", c.DBPath(), "/var/lib/otpgate/otpgate.db"},
		{"key file", c.KeyPath(), "/var/lib/otpgate/seed.key"},
		// The unit's RuntimeDirectory=otpgate.
		{"control socket", c.SocketPath(), "/run/otpgate/control.sock"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if len(c.Clients) != 0 {
		t.Errorf("the packaged config has %d clients; it must have none until the admin adds one", len(c.Clients))
	}
}

// TestPackagedConfigDefaults uncomments every "#key = value" line (the
// file's convention for a default) and checks that the result is the same
// config: a comment that shows a wrong default or a misspelled key fails.
func TestPackagedConfigDefaults(t *testing.T) {
	raw, err := os.ReadFile(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	defaultLine := regexp.MustCompile(`(?m)^#([a-z][a-z0-9_]* = .*)$`)
	n := len(defaultLine.FindAll(raw, -1))
	if n < 10 {
		t.Fatalf("found %d \"#key = value\" default lines; the file should show most defaults", n)
	}
	uncommented := defaultLine.ReplaceAll(raw, []byte("$1"))
	path := filepath.Join(t.TempDir(), "radiusd.toml")
	if err := os.WriteFile(path, uncommented, 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := config.Load(packagedConfig)
	if err != nil {
		t.Fatal(err)
	}
	explicit, err := config.Load(path)
	if err != nil {
		t.Fatalf("with its %d default lines uncommented the config does not load: %v", n, err)
	}
	plain.Path, explicit.Path = "", ""
	// key_file's default is computed (KeyPath), not filled in.
	plain.KeyFile, explicit.KeyFile = plain.KeyPath(), explicit.KeyPath()
	if !reflect.DeepEqual(plain, explicit) {
		t.Errorf("a commented default differs from the real default:\n defaults: %+v\n comments: %+v", plain, explicit)
	}
}

// flagNames returns the flag names in Go flag-package or CLI help text
// ("  -config PATH", "  --json").
func flagNames(help string) []string {
	re := regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`)
	var out []string
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(help, -1) {
		if name := m[1]; !seen[name] && name != "h" && name != "help" {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// readManPage returns the roff source with "\-" (a roff minus) read as "-".
func readManPage(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../packaging/man", name+".8"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), `\-`, "-")
}

func helpOutput(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // -h exits 0 or 2 depending on the flag package's mode
	if out.Len() == 0 {
		t.Fatalf("%s %s printed nothing", bin, strings.Join(args, " "))
	}
	return out.String()
}

func TestManPageOtpgatedFlags(t *testing.T) {
	page := readManPage(t, "otpgated")
	flags := flagNames(helpOutput(t, bin("otpgated"), "-h"))
	if len(flags) == 0 {
		t.Fatal("otpgated -h shows no flags")
	}
	for _, f := range flags {
		if !strings.Contains(page, "-"+f) {
			t.Errorf("packaging/man/otpgated.8 does not document -%s", f)
		}
	}
}

func TestManPageOtpgatePamFlags(t *testing.T) {
	page := readManPage(t, "otpgate-pam")
	flags := flagNames(helpOutput(t, bin("otpgate-pam"), "-h"))
	if len(flags) < 2 {
		t.Fatalf("otpgate-pam -h shows %d flags (%v); want -config and -version", len(flags), flags)
	}
	for _, f := range flags {
		if !strings.Contains(page, "-"+f) {
			t.Errorf("packaging/man/otpgate-pam.8 does not document -%s", f)
		}
	}
}

func TestManPageOtpgateCommands(t *testing.T) {
	page := readManPage(t, "otpgate")
	overview := helpOutput(t, bin("otpgate"), "--help")
	// Command lines in the overview: "  user add   Create a user."
	cmdLine := regexp.MustCompile(`(?m)^  ([a-z][a-z-]*(?: [a-z][a-z-]*)?)  +\S`)
	cmds := cmdLine.FindAllStringSubmatch(overview, -1)
	if len(cmds) < 10 {
		t.Fatalf("found %d commands in `otpgate --help`; the parser lost track:\n%s", len(cmds), overview)
	}
	for _, m := range cmds {
		name := m[1]
		if !strings.Contains(page, name) {
			t.Errorf("packaging/man/otpgate.8 does not document the command %q", name)
			continue
		}
		for _, f := range flagNames(helpOutput(t, bin("otpgate"), append(strings.Fields(name), "--help")...)) {
			if !strings.Contains(page, "-"+f) {
				t.Errorf("packaging/man/otpgate.8 does not document %s --%s", name, f)
			}
		}
	}
}

// TestManPagesRender formats each page with man(1) and fails on any groff
// warning.
func TestManPagesRender(t *testing.T) {
	man := requireTool(t, "man")
	for _, name := range []string{"otpgated", "otpgate", "otpgate-pam"} {
		var stderr bytes.Buffer
		cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", filepath.Join("../packaging/man", name+".8"))
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		cmd.Stdout, cmd.Stderr = new(bytes.Buffer), &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("man %s.8: %v\n%s", name, err, stderr.String())
			continue
		}
		if stderr.Len() > 0 {
			t.Errorf("man %s.8 warns:\n%s", name, stderr.String())
		}
		if !strings.Contains(cmd.Stdout.(*bytes.Buffer).String(), "SYNOPSIS") {
			t.Errorf("man %s.8 renders without a SYNOPSIS", name)
		}
	}
}
