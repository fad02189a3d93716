// Package e2e runs the real otpgate binaries against real peers nobody here
// wrote: radclient, pamtester with pam_radius_auth and pam_exec, sshd,
// oathtool, zbarimg and google-authenticator.
package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds otpgated, otpgate and otpgate-pam built once for the run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otpgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		for _, name := range []string{"otpgated", "otpgate", "otpgate-pam"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", name, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// bin returns the path of a binary built for this run.
func bin(name string) string { return filepath.Join(binDir, name) }

// requireTool returns the path of an external tool. A missing tool fails the
// test in CI (CI=true) and skips it elsewhere.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if c := filepath.Join(dir, name); fileExists(c) {
			return c
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; run `make deps` (CI must have it)", name)
	}
	t.Skipf("%s is not installed; `make deps` installs it", name)
	return ""
}

// requireRoot fails in CI and skips elsewhere when not root (PAM services,
// sshd and pam_exec need it).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this end-to-end test needs root (PAM service files, sshd)")
	}
	t.Skip("needs root")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
