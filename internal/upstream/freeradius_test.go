package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestFreeRADIUS asks Debian's FreeRADIUS, started by the test on a
// loopback port: its Accept and Reject are the answers, and one that does
// not sign its answers (FreeRADIUS before 3.2.5 by default) is no answer.
func TestFreeRADIUS(t *testing.T) {
	const secret = "upstream-freeradius-secret-0123"
	users := []testtool.FreeRADIUSUser{{Name: "alice", Password: "alice upstream pw"}}
	signed := testtool.StartFreeRADIUS(t, secret, true, users...)
	unsigned := testtool.StartFreeRADIUS(t, secret, false, users...)
	for _, tt := range []struct {
		name     string
		server   string
		user, pw string
		ok       bool
		wantErr  bool
	}{
		{"accept", signed.Addr, "alice", "alice upstream pw", true, false},
		{"wrong password", signed.Addr, "alice", "alice upstream pw!", false, false},
		{"unknown user", signed.Addr, "mallory", "alice upstream pw", false, false},
		{"unsigned accept", unsigned.Addr, "alice", "alice upstream pw", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Servers: []string{tt.server}, Secret: []byte(secret), Timeout: 2 * time.Second, NASIdentifier: "otpgate"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Check(context.Background(), tt.user, tt.pw)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if res.OK != tt.ok {
				t.Errorf("OK = %v, want %v", res.OK, tt.ok)
			}
		})
	}
}
