package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestAuditFileRefusesPlanted: the audit log is never opened through a
// symlink, and a file another user created at its path is not appended to
// (they could read every record, or point it elsewhere).
func TestAuditFileRefusesPlanted(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, path, victim string)
		root  bool
		want  string
	}{
		{"symlink", func(t *testing.T, path, victim string) {
			if err := os.Symlink(victim, path); err != nil {
				t.Fatal(err)
			}
		}, false, "is a symbolic link"},
		{"file of another user", func(t *testing.T, path, victim string) {
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, true, "owned by nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testtool.RequireRoot(t, "to plant a file owned by another user (chown)")
			}
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "audit.log")
			tt.plant(t, path, victim)
			s, err := newAuditSink(path, nil, nil)
			if err == nil {
				newAuditLogger(s).Info("radius access", "user", "alice")
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newAuditSink = %v, want an error containing %q", err, tt.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Errorf("the audit record went through the planted link: %q", b)
			}
		})
	}
}
