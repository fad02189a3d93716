package cli

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/internal/web"
)

func TestEnrollLinks(t *testing.T) {
	e := newEnv(t)
	if r := e.run("", "enroll", "alice", "--link"); r.code != ExitFailure || !strings.Contains(r.stderr, "no [web] public_url") {
		t.Fatalf("without [web]: exit %d: %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(e.config)
	b = append(b, "\n[auth]\nmfa = \"optional\"\nmfa_groups = [\"vpn\"]\n\n[web]\nlisten = \"127.0.0.1:8443\"\npublic_url = \"https://otp.example.com:8443/\"\n"...)
	if err := os.WriteFile(e.config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][]string{{"alice", "vpn"}, {"bob", "vpn"}, {"carol", "staff"}, {"dave", "vpn"}} {
		e.must("", "user", "add", u[0], "--no-password", "--group", u[1])
	}
	e.must("", "user", "disable", "dave")
	// bob has a token already.
	st := e.open()
	l := admin.NewLocal(st, password.Params{Time: 1, MemKiB: 1024, Threads: 1}, "Test VPN")
	secret, err := l.BeginEnroll(context.Background(), "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ActivateTOTP(context.Background(), "bob", codeNow(t, secret), false); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := e.must("", "enroll", "carol", "--link", "--expires", "24h", "--json")
	var one web.Link
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one.User != "carol" || !strings.HasPrefix(one.URL, "https://otp.example.com:8443/enroll/") {
		t.Fatalf("--json: %q, %v", r.stdout, err)
	}
	if r := e.run("", "enroll", "bob", "--link"); r.code != ExitFailure || !strings.Contains(r.stderr, "a link never replaces one") {
		t.Fatalf("enrolled user: exit %d: %s", r.code, r.stderr)
	}
	// Only alice must enroll and has not: bob has a token, carol is not in
	// an MFA group, dave is disabled.
	r = e.must("", "enroll", "--link", "--all-pending", "--json")
	var all []web.Link
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != 1 || all[0].User != "alice" {
		t.Fatalf("--all-pending: %q, %v", r.stdout, err)
	}
	r = e.must("", "enroll", "--link", "--all-pending")
	if !strings.HasPrefix(r.stdout, "alice\thttps://otp.example.com:8443/enroll/") || !strings.Contains(r.stdout, "works once") {
		t.Fatalf("text: %q", r.stdout)
	}
	if strings.Contains(r.stdout, all[0].URL) {
		t.Error("a second link for alice repeats the first")
	}
}
