package importer

import (
	"strings"
	"testing"
)

// FuzzParseCSV checks that no input panics and that accepted rows keep the
// promises the importer makes (unique names, secrets of at least 16 bytes).
func FuzzParseCSV(f *testing.F) {
	f.Add("name,password,totp_secret,groups\nalice,pw," + b32 + ",vpn;ops\n")
	f.Add("alice,\"a,b\",,\n")
	f.Add("bob,$2b$10$x,,\n")
	f.Fuzz(func(t *testing.T, in string) {
		users, err := ParseCSV(strings.NewReader(in))
		if err != nil {
			if users != nil {
				t.Fatal("users returned with an error")
			}
			return
		}
		seen := map[string]bool{}
		for _, u := range users {
			if u.Name == "" || seen[u.Name] {
				t.Fatalf("bad or duplicate name %q", u.Name)
			}
			seen[u.Name] = true
			if u.Secret != nil && len(u.Secret) < 16 {
				t.Fatalf("secret of %d bytes accepted", len(u.Secret))
			}
		}
	})
}

func FuzzParseGoogleAuthenticator(f *testing.F) {
	f.Add(gaFile)
	f.Add("326HKGA43YQPSQ737HWDVVZYHI\n\" HOTP_COUNTER 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		u, err := ParseGoogleAuthenticator(strings.NewReader(in), "alice")
		if err != nil {
			return
		}
		if len(u.Secret) < 16 {
			t.Fatalf("secret of %d bytes accepted", len(u.Secret))
		}
		for _, c := range u.RecoveryCodes {
			if len(c) != 8 || strings.Trim(c, "0123456789") != "" {
				t.Fatalf("scratch code %q accepted", c)
			}
		}
	})
}
