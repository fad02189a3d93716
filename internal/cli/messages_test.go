package cli

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/totp"
)

// TestKeyFileErrorsSayItOnce: a missing or wrong seed.key is reported in
// one sentence with the paths and the fix, not the CLI's advice followed by
// the store's wrapped twice ("restore it from backup" three times).
func TestKeyFileErrorsSayItOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		breakK func(t *testing.T, key string)
		want   string
		once   []string
	}{
		{"missing", func(t *testing.T, key string) {
			if err := os.Remove(key); err != nil {
				t.Fatal(err)
			}
		}, "is missing; restore it from backup", []string{"restore", "seed.key", "otpgate.db"}},
		{"wrong", func(t *testing.T, key string) {
			other := make([]byte, 32)
			rand.Read(other)
			if err := os.WriteFile(key, other, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "does not match the database", []string{"match", "seed.key", "otpgate.db"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.must("", "user", "add", "alice", "--no-password")
			tt.breakK(t, filepath.Join(e.dir, "data", "seed.key"))
			r := e.run("", "user", "list")
			if r.code != ExitFailure || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
			for _, w := range tt.once {
				if n := strings.Count(r.stderr, w); n != 1 {
					t.Errorf("%q appears %d times in %q; want once", w, n, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "store:") {
				t.Errorf("stderr %q carries the store's own wording too", r.stderr)
			}
		})
	}
}

// TestWrongEnrollCodeSaysItOnce: a wrong code names the user once, without
// the prefixes of every layer it went through ("enroll: activate "alice":
// admin: activate token for "alice": wrong code").
func TestWrongEnrollCodeSaysItOnce(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	secret := e.startJSON("alice")
	wrong := "000000"
	if _, ok, _ := totp.Default.Match(secret, wrong, time.Now(), totp.MaxSkew); ok {
		wrong = "999999"
	}
	r := e.run("", "enroll", "alice", "--code", wrong)
	first, _, _ := strings.Cut(r.stderr, "\n")
	if want := "otpgate: enroll alice: wrong code (4 more tries before the enrollment is discarded)"; first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	r = e.run("", "enroll", "alice", "--code", "12345")
	if first, _, _ := strings.Cut(r.stderr, "\n"); first != "otpgate: enroll alice: wrong code (a code is the 6 digits the app shows)" {
		t.Errorf("short code: first line %q", first)
	}
}

// TestDiscardedForcedEnrollAdviceKeepsForce: after the fifth wrong code on
// a forced re-enrollment, the advice to start again includes --force (the
// user still has the old token, so it is needed).
func TestDiscardedForcedEnrollAdviceKeepsForce(t *testing.T) {
	e := newEnv(t)
	e.must("", "user", "add", "alice", "--no-password")
	first := e.startJSON("alice")
	e.must("", "enroll", "alice", "--code", codeNow(t, first))
	second := e.startJSON("alice", "--force")
	var r result
	for i, n := 0, 0; i < admin.MaxEnrollTries; n++ {
		c := fmt.Sprintf("%06d", 111111*(n%9+1))
		if _, ok, _ := totp.Default.Match(second, c, time.Now(), totp.MaxSkew); ok {
			continue
		}
		r = e.run("", "enroll", "alice", "--force", "--code", c)
		i++
	}
	if !strings.Contains(r.stderr, "was discarded") || !strings.Contains(r.stderr, "start again with: otpgate enroll alice --force\n") {
		t.Errorf("fifth wrong code with --force: %q; want the advice to start again with --force", r.stderr)
	}
}

// TestImportExistingUserNamesLine: an import that fails because a user
// already exists says which line of the file holds that user, directly and
// through the daemon's control socket.
func TestImportExistingUserNamesLine(t *testing.T) {
	for _, viaSocket := range []bool{false, true} {
		t.Run(fmt.Sprintf("socket=%v", viaSocket), func(t *testing.T) {
			e := newEnv(t)
			e.must("", "user", "add", "alice", "--no-password")
			e.must("", "user", "add", "dave", "--no-password")
			if viaSocket {
				e.startControl()
			}
			csv := filepath.Join(e.dir, "u.csv")
			text := "name,password,totp_secret,groups\ncarol,,,\n\nalice,,,\nbob,,,\ndave,,,\n"
			if err := os.WriteFile(csv, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run("", "import", csv, "--format", "csv")
			want := fmt.Sprintf("otpgate: import %s: line 4: user \"alice\" already exists (and 1 more: dave, line 6); nothing was imported\n", csv)
			if r.code != ExitFailure || r.stderr != want {
				t.Errorf("exit %d, stderr %q\nwant %q", r.code, r.stderr, want)
			}
		})
	}
}
