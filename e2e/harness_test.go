// Package e2e runs the real otpgate binaries against real peers nobody here
// wrote: radclient, pamtester with pam_radius_auth and pam_exec, sshd,
// oathtool, zbarimg and google-authenticator.
package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/testtool"
)

// binDir holds otpgated, otpgate and otpgate-pam built once for the run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otpgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		for _, name := range []string{"otpgated", "otpgate", "otpgate-pam"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", name, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// bin returns the path of a binary built for this run.
func bin(name string) string { return filepath.Join(binDir, name) }

// requireTool returns the path of an external tool; see testtool.Require.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	return testtool.Require(t, name)
}

// hostTestsEnv opts a plain go test into the tests that change this host;
// make test sets it to 1, and CI=true implies it.
const hostTestsEnv = "OTPGATE_HOST_TESTS"

// requireHostTests guards a test that changes this host: it adds Unix users,
// writes PAM services into /etc/pam.d or runs an sshd (the TestHost... tests).
// Such a test runs when CI=true or OTPGATE_HOST_TESTS=1 and needs root;
// under a plain go test it skips, saying how to run it. When CI=true it
// fails, never skips, when not root.
func requireHostTests(t testing.TB) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv(hostTestsEnv) != "1" {
		t.Skipf("changes this host (Unix users, /etc/pam.d, an sshd): run `make test` as root, or %s=1 go test ./e2e as root", hostTestsEnv)
	}
	if os.Geteuid() == 0 {
		return
	}
	if ci {
		t.Fatal("this end-to-end test changes the host (Unix users, /etc/pam.d, an sshd) and needs root; CI must run it as root")
	}
	t.Skip("changes this host and needs root: run `make test` as root")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// daemonSecret is the shared secret of the "localhost" client (127.0.0.1/32)
// in every startDaemon config.
const daemonSecret = "e2e-daemon-secret-0123456789abcdef"

// Daemon is an otpgated started by startDaemon: a config in Dir, data in
// Dir/data, RADIUS on Addr (UDP, 127.0.0.1), metrics on Metrics (TCP,
// 127.0.0.1) and the control socket at Socket.
type Daemon struct {
	t       testing.TB
	Dir     string
	Config  string // path of radiusd.toml
	Addr    string // RADIUS host:port
	Metrics string // metrics host:port
	Socket  string // control socket path
	Secret  string // secret of the 127.0.0.1/32 client

	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait result, valid after exited is closed

	passwordKeys string // more keys of [password] (startDaemonWith)
}

// lockedBuffer is an io.Writer safe for a process's output (written by exec) and the test (reading).
type lockedBuffer = testtool.Buffer

// daemonConfig is the config startDaemon writes: cheap argon2 for speed,
// debug logs, the audit log on stderr, one loopback client, then extraToml
// (more [[client]] tables, [auth], ...; not [log], [radius], [password] or
// [metrics]).
func daemonConfig(port, metricsPort int, extraToml string) string {
	return daemonConfigWith(port, metricsPort, "", extraToml)
}

// daemonConfigWith is daemonConfig with passwordKeys (source = "ldap", ...)
// added to its [password] table.
func daemonConfigWith(port, metricsPort int, passwordKeys, extraToml string) string {
	return fmt.Sprintf(`version = 1
data_dir = "data"
issuer = "otpgate-e2e"

[log]
level = "debug"
audit = "stderr"

[radius]
listen = ["127.0.0.1:%d"]
acct_listen = ["127.0.0.1:0"]
# Rejects at once: some tests send hundreds one after another (the 1s
# default is tested in internal/config, a delay in TestRadiusWithRadclient).
reject_delay = "0s"

[password]
argon2_time = 1
argon2_memory_kib = 1024
%s

[metrics]
listen = "127.0.0.1:%d"

[[client]]
name = "localhost"
address = "127.0.0.1/32"
secret = %q

%s
`, port, passwordKeys, metricsPort, daemonSecret, extraToml)
}

// startDaemon writes a config into dir (t.TempDir() when empty), starts
// bin("otpgated") on it and waits until it is ready: the control socket,
// created after every listener is bound, answers. t.Cleanup stops it with
// SIGTERM and checks exit status 0 and that the socket is gone.
func startDaemon(t testing.TB, dir string, extraToml string) *Daemon {
	t.Helper()
	return startDaemonWith(t, dir, "", extraToml)
}

// startDaemonWith is startDaemon with passwordKeys added to the [password]
// table, such as `source = "ldap"`.
func startDaemonWith(t testing.TB, dir, passwordKeys, extraToml string) *Daemon {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	d := &Daemon{
		t:       t,
		Dir:     dir,
		Config:  filepath.Join(dir, "radiusd.toml"),
		Addr:    fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp")),
		Metrics: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")),
		Socket:  filepath.Join(dir, "data", "control.sock"),
		Secret:  daemonSecret,
		out:     &lockedBuffer{},
		exited:  make(chan struct{}),

		passwordKeys: passwordKeys,
	}
	d.WriteConfig(extraToml)
	d.start(bin("otpgated"), "-config", d.Config)
	return d
}

// start runs argv (otpgated, or a wrapper that execs it) and waits until the
// daemon is ready: the control socket, created after every listener is
// bound, answers. t.Cleanup stops it.
func (d *Daemon) start(argv ...string) {
	t := d.t
	t.Helper()
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start otpgated: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("otpgated output:\n%s", d.Output())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("otpgated exited during start (%v):\n%s", d.err, d.Output())
		default:
		}
		c, err := control.Dial(d.Socket)
		if err == nil {
			if cl, ok := c.(interface{ Close() error }); ok {
				cl.Close()
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("otpgated not ready after 20 s (%v):\n%s", err, d.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WriteConfig rewrites the config with the same ports and a new extraToml
// (send SIGHUP, or use Reload, to apply it).
func (d *Daemon) WriteConfig(extraToml string) {
	d.t.Helper()
	_, p, _ := net.SplitHostPort(d.Addr)
	_, mp, _ := net.SplitHostPort(d.Metrics)
	port, _ := strconv.Atoi(p)
	mport, _ := strconv.Atoi(mp)
	if err := os.WriteFile(d.Config, []byte(daemonConfigWith(port, mport, d.passwordKeys, extraToml)), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// Reload rewrites the config with extraToml, sends SIGHUP and waits for the
// daemon to log the outcome; it returns true for "config reloaded" and
// false for "reload failed".
func (d *Daemon) Reload(extraToml string) bool {
	d.t.Helper()
	before := d.Output()
	okN, failN := strings.Count(before, `msg="config reloaded"`), strings.Count(before, `msg="reload failed`)
	d.WriteConfig(extraToml)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatalf("SIGHUP: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out := d.Output()
		if strings.Count(out, `msg="config reloaded"`) > okN {
			return true
		}
		if strings.Count(out, `msg="reload failed`) > failN {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("otpgated logged no reload outcome within 10 s of SIGHUP:\n%s", d.Output())
	return false
}

// Output is everything otpgated wrote to stdout and stderr so far.
func (d *Daemon) Output() string { return d.out.String() }

// Stop sends SIGTERM and checks a clean exit (status 0 within 10 s) and that
// the control socket was removed. Calling it again does nothing.
func (d *Daemon) Stop() {
	d.t.Helper()
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.err != nil {
			d.t.Errorf("otpgated exited with %v after SIGTERM, want status 0:\n%s", d.err, d.Output())
		}
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("otpgated did not stop within 10 s of SIGTERM:\n%s", d.Output())
	}
	if _, err := os.Lstat(d.Socket); !errors.Is(err, os.ErrNotExist) {
		d.t.Errorf("control socket %s still exists after shutdown (%v)", d.Socket, err)
	}
}

// requirePAMRadius finds Debian's pam_radius_auth module: missing, it
// fails under CI=true and skips otherwise.
func requirePAMRadius(t *testing.T) {
	t.Helper()
	for _, dir := range []string{"/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security"} {
		if fileExists(filepath.Join(dir, "pam_radius_auth.so")) {
			return
		}
	}
	requireFile(t, "/usr/lib/x86_64-linux-gnu/security/pam_radius_auth.so", "libpam-radius-auth")
}

// requireFile fails in CI and skips elsewhere when a file a package ships
// is missing, like requireTool.
func requireFile(t *testing.T, path, pkg string) {
	t.Helper()
	if fileExists(path) {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing: install %s (`make deps`; CI must have it)", path, pkg)
	}
	t.Skipf("%s is missing; `make deps` installs %s", path, pkg)
}

// auditRecord is one line of otpgated's audit log: "radius access", JSON
// on stderr as startDaemon configures it. It never holds the code.
type auditRecord struct {
	Msg, User, Client, Station, Mode, Result, Reason string
}

// auditRecords returns the audit lines d wrote so far, in order; other
// output (the debug log, in text) is left out.
func auditRecords(d *Daemon) []auditRecord {
	var recs []auditRecord
	for _, line := range strings.Split(d.Output(), "\n") {
		var r auditRecord
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &r) != nil || r.Msg != "radius access" {
			continue
		}
		recs = append(recs, r)
	}
	return recs
}

// countAudit counts d's audit lines with that reason.
func countAudit(d *Daemon, reason string) int {
	n := 0
	for _, r := range auditRecords(d) {
		if r.Reason == reason {
			n++
		}
	}
	return n
}
