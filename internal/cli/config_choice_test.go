package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/config"
)

// TestConfigChoiceIsVisible: when the CLI picks radiusd.toml itself (no
// -config), it says on stderr which file, so an admin always sees which
// database a command works on; with -config it stays quiet.
func TestConfigChoiceIsVisible(t *testing.T) {
	e := newEnv(t)
	// No system file: one installed on this machine (packaging's
	// test-install.sh leaves one) would be chosen before ./radiusd.toml.
	absentSystem := filepath.Join(t.TempDir(), "etc-radiusd.toml")
	findConfig = func(flag string) (string, error) {
		return config.FindAmong(flag, absentSystem, "radiusd.toml")
	}
	t.Cleanup(func() { findConfig = config.Find })
	t.Chdir(e.dir)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		return code, errb.String()
	}
	want := "otpgate: using " + filepath.Join(e.dir, "radiusd.toml") + " (found without -config)\n"
	// The first line; a note on the OTP-only user follows it.
	if code, stderr := run("user", "add", "zoe", "--no-password"); code != 0 || !strings.HasPrefix(stderr, want) {
		t.Errorf("without -config: exit %d, stderr %q; want %q", code, stderr, want)
	}
	if code, stderr := run("user", "list"); code != 0 || stderr != want {
		t.Errorf("user list without -config: exit %d, stderr %q; want %q", code, stderr, want)
	}
	if code, stderr := run("-config", "radiusd.toml", "user", "delete", "zoe"); code != 0 || stderr != "" {
		t.Errorf("with -config: exit %d, stderr %q; want nothing", code, stderr)
	}
}
