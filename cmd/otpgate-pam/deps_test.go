package main

import (
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestDepsStaySmall keeps otpgate-pam free of the store, the server and the
// enrollment code: it runs as root inside every login and should carry
// nothing it does not need.
func TestDepsStaySmall(t *testing.T) {
	forbidden := []string{
		"go.etcd.io/bbolt",
		"github.com/otpgate/otpgate/store",
		"github.com/otpgate/otpgate/radius",
		"github.com/otpgate/otpgate/auth",
		"github.com/otpgate/otpgate/internal/admin",
		"github.com/otpgate/otpgate/internal/control",
		"github.com/otpgate/otpgate/enroll",
		"github.com/mdp/qrterminal",
	}
	for _, dep := range testtool.Deps(t, ".") {
		// Of this module, only the helper itself: a new import of any
		// other otpgate package (config pulls in argon2, for one) must be
		// a deliberate change of this list.
		if strings.HasPrefix(dep, "github.com/otpgate/otpgate/") && dep != "github.com/otpgate/otpgate/pamhelper" && dep != "github.com/otpgate/otpgate/cmd/otpgate-pam" {
			t.Errorf("otpgate-pam depends on %s; only pamhelper is allowed", dep)
		}
		for _, bad := range forbidden {
			if dep == bad || strings.HasPrefix(dep, bad+"/") {
				t.Errorf("otpgate-pam depends on %s; keep it out of the PAM helper", dep)
			}
		}
	}
}
