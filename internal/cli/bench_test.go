package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchCommandPassesArgsThrough(t *testing.T) {
	out := filepath.Join(t.TempDir(), "users.csv")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"generate users", []string{"bench", "-gen-users", "3", "-out", out}, ExitOK},
		{"unknown flag is a usage error", []string{"bench", "-bogus"}, ExitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := Run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr); got != tc.want {
				t.Fatalf("Run(%q) = %d, want %d; stderr:\n%s", tc.args, got, tc.want, stderr.String())
			}
		})
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(strings.TrimSpace(string(b)), "\n") + 1; lines < 3 {
		t.Fatalf("bench -gen-users 3 wrote %d lines:\n%s", lines, b)
	}
}
