package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchHelpOnce: `otpgate bench --help` prints the load generator's
// usage once, without a second synopsis or a --config flag bench does not
// take.
func TestBenchHelpOnce(t *testing.T) {
	for _, args := range [][]string{{"bench", "--help"}, {"bench", "-h"}, {"help", "bench"}} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		got := out.String()
		if code != ExitOK || errb.Len() != 0 {
			t.Errorf("otpgate %s: exit %d, stderr %q", strings.Join(args, " "), code, errb.String())
		}
		if n := strings.Count(strings.ToLower(got), "usage:"); n != 1 {
			t.Errorf("otpgate %s prints %d usage lines, want 1:\n%s", strings.Join(args, " "), n, got)
		}
		if strings.Contains(got, "-config") || !strings.Contains(got, "-users") {
			t.Errorf("otpgate %s: want bench's own flags only:\n%s", strings.Join(args, " "), got)
		}
	}
}
