// Package testtool owns what tests across packages share: finding and
// running the external programs they check against (oathtool, zbarimg,
// radclient, google-authenticator, ...), a log buffer a server may write
// while the test reads it, and waiting for a condition with a deadline. A
// missing tool fails the test when CI=true and skips it elsewhere, so CI
// never passes by skipping.
package testtool

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require returns the path of the program name, also looking in the sbin
// directories a non-root PATH may lack.
func Require(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		c := filepath.Join(dir, name)
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	missing(t, name)
	return ""
}

// missing fails the test when CI=true, which must run every test, and
// skips it elsewhere: what (a program) is not installed.
func missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; run `make deps` (CI must have it)", what)
	}
	t.Skipf("%s is not installed; `make deps` installs it", what)
}

// Run runs the program name with args, empty stdin and a 20 s limit, and
// returns its stdout; a failure fails the test with both outputs.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, Require(t, name), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("") // never wait for a question
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Deps lists pkg and every package it depends on, by import path (go list
// -deps; test files do not count). Fewer than 10 fails the test: such a list
// would prove nothing about what is absent from it.
func Deps(t testing.TB, pkg string) []string {
	t.Helper()
	deps := strings.Fields(Run(t, "go", "list", "-deps", "-f", "{{.ImportPath}}", pkg))
	if len(deps) < 10 {
		t.Fatalf("go list -deps %s returned only %d packages; the check would prove nothing", pkg, len(deps))
	}
	return deps
}

// Buffer is a bytes.Buffer safe for one goroutine writing (a server's log,
// a process's output) while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Eventually polls cond until it holds, and fails the test when it still
// does not after timeout; what says what was awaited. Tests wait with it
// for something another goroutine or process does, instead of sleeping a
// guessed time.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// SampleConfig copies the repository's sample radiusd.toml (at src, a path
// relative to the test's package) into a new t.TempDir() with mode and
// returns the copy's path. The sample holds a shared secret inline, so
// otpgated loads it only when others cannot read it (0600, as `make run`
// makes it); a git checkout leaves it 0644.
func SampleConfig(t testing.TB, src string, mode os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "radiusd.toml")
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// Nobody is the uid and gid (nobody:nogroup on Debian) a test gives a file
// it plants as another user's; chowning to it needs root (RequireRoot).
const Nobody = 65534

// RequireRoot skips a test that needs root (to chown a planted file to
// another user, say), naming why; under CI=true, which must run every
// test, it fails instead.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root %s; CI must run the tests as root", why)
	}
	t.Skipf("needs root %s", why)
}
