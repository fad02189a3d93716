package e2e

// End-to-end tests of a first factor checked outside otpgate's store:
// otpgated with [password] source = "ldap" against a real slapd (radclient,
// and Debian's pam_radius_auth through pamtester), and source = "radius"
// with Debian's FreeRADIUS as the upstream server. The code stays otpgate's.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// directoryTree is the slapd tree of these tests (under testtool's base):
// alice (enrolled in otpgate by the test), bob and carol (only in the
// directory).
const directoryTree = `dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
userPassword: alice directory pw

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
userPassword: bob directory pw

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
userPassword: carol directory pw
`

const (
	alicePW = "alice directory pw"
	bobPW   = "bob directory pw"
	carolPW = "carol directory pw"
)

// ldapServer starts slapd with directoryTree and StartTLS under a test CA,
// and otpgated with [password] source = "ldap" pointed at it (the CA in
// ca_file) and extraToml.
func ldapServer(t *testing.T, extraToml string) *pamServer {
	t.Helper()
	ca := testtool.NewTestCA(t, t.TempDir())
	dir := testtool.StartSlapd(t, ca, directoryTree)
	secret := filepath.Join(t.TempDir(), "ldap.secret")
	if err := os.WriteFile(secret, []byte("servicepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ldap := fmt.Sprintf(`[ldap]
urls = [%q]
start_tls = true
ca_file = %q
bind_dn = "cn=otpgate,ou=services,dc=example,dc=com"
bind_password_file = %q
base_dn = %q
user_filter = "(&(objectClass=inetOrgPerson)(uid={user}))"
timeout = "3s"
`, dir.URL, ca.CAFile, secret, dir.Suffix)
	return &pamServer{Daemon: startDaemonWith(t, "", `source = "ldap"`, ldap+extraToml), t: t}
}

// radclientStep is one Access-Request and what must come of it.
type radclientStep struct {
	name, user, password string
	want                 string // Access-Accept or Access-Reject
	reason               string // otpgated's audit reason; "" not checked
}

func runRadclientSteps(t *testing.T, srv *pamServer, steps []radclientStep) {
	t.Helper()
	for _, st := range steps {
		r := radclientSend(t, srv.Addr, srv.Secret, userPassword(st.user, st.password)...)
		if r.code != st.want {
			t.Errorf("%s: %q, want %q\n%s", st.name, r.code, st.want, r.out)
		}
		if st.reason == "" {
			continue
		}
		if got := auditReason(t, srv, st.user, st.reason); got != st.reason {
			t.Errorf("%s: otpgated's audit reason = %q, want %q", st.name, got, st.reason)
		}
	}
}

// TestLDAPWithRadclient: radclient against an LDAP-backed otpgated in append
// mode. The directory's password and otpgate's code let alice in; a wrong
// one of either, an unknown user or a filter injection do not. bob, only in
// the directory, is created on his first right password, enrolls and logs
// in (typing BOB); carol with a wrong password is not created.
func TestLDAPWithRadclient(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	srv := ldapServer(t, "[auth]\nmode = \"append\"\n")
	aliceKey := srv.addUser("alice", "") // no local password: the directory has it

	waitStepStart()
	// The enrollment used the current step; logins use the next one.
	code := totpAt(t, aliceKey, time.Now().Add(30*time.Second))
	runRadclientSteps(t, srv, []radclientStep{
		{"wrong code", "alice", alicePW + wrongCode(t, aliceKey), "Access-Reject", "bad_code"},
		{"wrong password", "alice", "not " + alicePW + code, "Access-Reject", "bad_password"},
		{"another user's password", "alice", bobPW + code, "Access-Reject", "bad_password"},
		{"unknown user", "mallory", alicePW + code, "Access-Reject", "unknown_user"},
		{"filter injection", "*", alicePW + code, "Access-Reject", ""},
		{"filter injection with a parenthesis", "alice)(uid=*", alicePW + code, "Access-Reject", ""},
		{"right password and code", "alice", alicePW + code, "Access-Accept", "ok"},
		{"replayed code", "alice", alicePW + code, "Access-Reject", "code_reused"},
		{"directory user, first login", "bob", bobPW, "Access-Reject", "not_enrolled"},
		{"directory user, wrong password", "carol", "not " + carolPW, "Access-Reject", "unknown_user"},
	})

	show := srv.otpgate("", "user", "show", "bob")
	if !regexp.MustCompile(`(?m)^password:\s+ldap\b`).MatchString(show) {
		t.Errorf("otpgate user show bob does not say password: ldap:\n%s", show)
	}
	if list := srv.otpgate("", "user", "list"); strings.Contains(list, "carol") || !strings.Contains(list, "bob") {
		t.Errorf("otpgate user list: want bob (created on a right password), not carol (wrong password):\n%s", list)
	}

	bobKey := srv.enroll("bob")
	waitStepStart()
	// uid ignores case, as AD's sAMAccountName does: BOB is bob's record.
	runRadclientSteps(t, srv, []radclientStep{
		{"created directory user, enrolled, name in capitals", "BOB", bobPW + totpAt(t, bobKey, time.Now().Add(30*time.Second)), "Access-Accept", ""},
	})
	if list := srv.otpgate("", "user", "list"); strings.Contains(list, "BOB") {
		t.Errorf("a login as BOB made a second record:\n%s", list)
	}
}

// TestHostPAMRadiusLDAP runs Debian's pam_radius_auth
// (packaging/pam.d/otpgate-radius) through pamtester against an
// LDAP-backed otpgated in challenge mode: the directory's password at the
// first prompt, otpgate's code at the second. It writes a PAM service into
// /etc/pam.d.
func TestHostPAMRadiusLDAP(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "pamtester")
	requireTool(t, "oathtool")
	requirePAMRadius(t)
	srv := ldapServer(t, pamRadiusClient)
	aliceKey := srv.addUser("alice", "")
	service := installPAMService(t, pamRadiusStack(t, srv.Addr))

	waitStepStart()
	code := totpAt(t, aliceKey, time.Now().Add(30*time.Second))
	steps := []pamStep{
		{"wrong code", "alice", []string{alicePW, wrongCode(t, aliceKey)}, false, 2, "bad_code"},
		{"wrong password", "alice", []string{"not " + alicePW, code}, false, 0, "bad_password"},
		{"unknown user", "mallory", []string{alicePW, code}, false, 0, "unknown_user"},
		{"right password and code", "alice", []string{alicePW, code}, true, 2, "ok"},
		{"directory user not enrolled", "bob", []string{bobPW, code}, false, 0, "not_enrolled"},
	}
	runPAMSteps(t, srv, service, steps)
	if show := srv.otpgate("", "user", "show", "bob"); !strings.Contains(show, "ldap") {
		t.Errorf("bob was not created as a directory user:\n%s", show)
	}
}

// TestUpstreamFreeRADIUS: otpgated with [password] source = "radius" and
// Debian's FreeRADIUS, started by the test with its own configuration on a
// loopback port, as the upstream server. Its Accept and otpgate's code are
// an Accept; its Reject is the uniform Reject; with it gone, no Accept.
func TestUpstreamFreeRADIUS(t *testing.T) {
	requireTool(t, "radclient")
	requireTool(t, "oathtool")
	const upstreamSecret = "e2e-upstream-secret-0123456789ab"
	const aliceUpstreamPW, bobUpstreamPW = "alice upstream pw", "bob upstream pw"
	fr := testtool.StartFreeRADIUS(t, upstreamSecret, true,
		testtool.FreeRADIUSUser{Name: "alice", Password: aliceUpstreamPW},
		testtool.FreeRADIUSUser{Name: "bob", Password: bobUpstreamPW})
	secretFile := filepath.Join(t.TempDir(), "upstream.secret")
	if err := os.WriteFile(secretFile, []byte(upstreamSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	upstream := fmt.Sprintf("[radius_upstream]\nservers = [%q]\nsecret_file = %q\ntimeout = \"1s\"\n\n[auth]\nmode = \"append\"\n", fr.Addr, secretFile)
	srv := &pamServer{Daemon: startDaemonWith(t, "", `source = "radius"`, upstream), t: t}
	aliceKey := srv.addUser("alice", "")

	waitStepStart()
	code := totpAt(t, aliceKey, time.Now().Add(30*time.Second))
	runRadclientSteps(t, srv, []radclientStep{
		{"wrong code", "alice", aliceUpstreamPW + wrongCode(t, aliceKey), "Access-Reject", "bad_code"},
		{"upstream Reject", "alice", "not " + aliceUpstreamPW + code, "Access-Reject", "bad_password"},
		{"unknown to both", "mallory", aliceUpstreamPW + code, "Access-Reject", "unknown_user"},
		{"upstream Accept and code", "alice", aliceUpstreamPW + code, "Access-Accept", "ok"},
		{"upstream user, first login", "bob", bobUpstreamPW, "Access-Reject", "not_enrolled"},
	})
	if show := srv.otpgate("", "user", "show", "bob"); !regexp.MustCompile(`(?m)^password:\s+radius\b`).MatchString(show) {
		t.Errorf("otpgate user show bob does not say password: radius:\n%s", show)
	}
	if !strings.Contains(fr.Log(), "Login OK: [alice") {
		t.Errorf("FreeRADIUS logged no Login OK for alice:\n%s", fr.Log())
	}

	fr.Stop()
	waitStepStart()
	runRadclientSteps(t, srv, []radclientStep{
		{"upstream down", "alice", aliceUpstreamPW + totpAt(t, aliceKey, time.Now().Add(30*time.Second)), "Access-Reject", "internal_error"},
	})
	if !strings.Contains(srv.Output(), "no RADIUS server answered") {
		t.Errorf("otpgated logged no line saying the upstream server is down:\n%s", srv.Output())
	}
}
