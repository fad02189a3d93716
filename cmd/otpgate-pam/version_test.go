package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestVersionFromLdflags builds the binary the way packaging/package.mk does
// (-ldflags "-X main.version=...") and checks that -version prints it.
func TestVersionFromLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "otpgate-pam")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=7.8.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-version")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no PAM_TYPE: not under pam_exec
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("otpgate-pam -version: %v", err)
	}
	if got, want := string(out), "otpgate-pam 7.8.9-test\n"; got != want {
		t.Errorf("otpgate-pam -version printed %q; want %q", got, want)
	}
}
