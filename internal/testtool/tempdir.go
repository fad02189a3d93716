package testtool

import (
	"os"
	"testing"
)

// PublicTempDir makes a temporary directory every user can enter (mode
// 0755; t.TempDir's parents are 0700), for what a test runs as another
// user: PostgreSQL as postgres, otpgate as an unprivileged user. The
// cleanup removes it.
func PublicTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
