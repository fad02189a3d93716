package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRadiusNoPasswordUser: users without a password (user add
// --no-password, a google-authenticator import) log in on the code alone
// only through an otp-only client; append and challenge clients give them
// the same Reject as a wrong password, audited as no_password, and do not
// use up the code. Both CLI commands say so on the terminal.
func TestRadiusNoPasswordUser(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	e, addr, audit := newRadiusEnv(t)
	ottoB32 := enrollViaCLI(t, e, "otto", "")
	gaPath := filepath.Join(t.TempDir(), "gail")
	gailB32, _ := gaFile(t, gaPath)
	code, _, errs := e.otpgate("", "import", gaPath, "--format", "google-authenticator")
	if code != 0 || !strings.Contains(errs, `gail has no password: only clients with mode = "otp-only"`) {
		t.Errorf("google-authenticator import: exit %d, stderr %q; want a note that gail logs in only through otp-only clients", code, errs)
	}
	code, _, errs = e.otpgate("", "user", "add", "nora", "--no-password")
	if code != 0 || !strings.Contains(errs, `nora has no password: only clients with mode = "otp-only"`) {
		t.Errorf("user add --no-password: exit %d, stderr %q; want the otp-only note", code, errs)
	}
	d := startRadiusDaemon(t, e, addr, audit)

	ma := "Message-Authenticator=0x00"
	for _, u := range []struct{ name, b32 string }{{"otto", ottoB32}, {"gail", gailB32}} {
		c := oathCode(t, u.b32, 0)
		user, pw := "User-Name="+u.name, fmt.Sprintf("User-Password=%q", c)
		if got, out := d.auth("127.0.0.1", secretAppend, user, pw, ma); got != "Access-Reject" {
			t.Errorf("%s, code alone on the append client: %q, want Access-Reject\n%s", u.name, got, out)
		}
		if got, out := d.auth("127.0.0.3", secretChallenge, user, pw, ma); got != "Access-Reject" {
			t.Errorf("%s, code alone on the challenge client: %q, want Access-Reject (no challenge)\n%s", u.name, got, out)
		}
		// The refusals did not use the code up.
		if got, out := d.auth("127.0.0.2", secretOTPOnly, user, pw, ma); got != "Access-Accept" {
			t.Errorf("%s, code on the otp-only client: %q, want Access-Accept\n%s", u.name, got, out)
		}
	}

	d.stop()
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	reasons := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct{ Result, Reason string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %q", line)
		}
		reasons[rec.Result+"/"+rec.Reason]++
	}
	if reasons["reject/no_password"] != 4 || reasons["accept/ok"] != 2 || len(reasons) != 2 {
		t.Errorf("audit %v, want 4 reject/no_password and 2 accept/ok\n%s", reasons, b)
	}
}
