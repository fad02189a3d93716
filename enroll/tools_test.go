package enroll

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of an external program the test checks
// against. Missing tools fail the test in CI and skip it elsewhere.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (needed in CI): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// run runs a tool with a timeout and returns its stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// zbarDecode decodes the QR code in png with zbarimg and returns the text.
func zbarDecode(t *testing.T, png []byte) string {
	t.Helper()
	requireTool(t, "zbarimg")
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(run(t, "zbarimg", "--raw", "-q", path), "\n")
}

// oathtool returns oathtool's TOTP code for secret at t (SHA1, 6 digits, 30 s).
func oathtool(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	out := run(t, "oathtool", "--totp", "-b", EncodeSecret(secret), "--now", "@"+strconv.FormatInt(at.Unix(), 10))
	return strings.TrimSpace(out)
}
