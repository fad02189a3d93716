package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestVersionFlag: `otpgate --version` works as `otpgated -version` and
// `otpgate version` do.
func TestVersionFlag(t *testing.T) {
	old := Version
	Version = "1.2.3-test"
	t.Cleanup(func() { Version = old })
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if code != ExitOK || out.String() != "otpgate 1.2.3-test\n" || errb.Len() != 0 {
			t.Errorf("otpgate %s: exit %d, stdout %q, stderr %q; want 0 and \"otpgate 1.2.3-test\"", strings.Join(args, " "), code, out.String(), errb.String())
		}
	}
}
