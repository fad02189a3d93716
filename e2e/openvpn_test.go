package e2e

// OpenVPN end to end: a real OpenVPN 2.6 server and client, each in a
// network namespace of its own joined by a veth pair, with otpgated in the
// server's namespace. Four ways a VPN asks otpgated:
//
//   - radiusplugin (Debian's openvpn-auth-radius): RADIUS without a
//     Message-Authenticator, and accounting to acct_listen (without an
//     answer to its Accounting-Request Start it fails the connection);
//   - openvpn-plugin-auth-pam with packaging/pam.d/otpgate (pam_exec +
//     otpgate-pam), the stack alone, so its own account line is what PAM
//     runs;
//   - radiusplugin with a client that has `static-challenge`: OpenVPN asks
//     for the code at a second prompt (on a terminal, which the test gives
//     it: OpenVPN 2.6 reads that answer from no file) and sends
//     SCRV1:<base64 password>:<base64 code>;
//   - the same client with auth-pam and packaging/pam.d/otpgate-radius:
//     auth-pam answers pam_radius_auth's password prompt and otpgated's
//     code challenge from the two fields.
//
// In each, password + code brings the tunnel up and a ping crosses it; a
// wrong code and the same code again end in AUTH_FAILED. A fifth case
// shows why servers need auth-gen-token: without it the first TLS
// renegotiation replays the code and the tunnel closes.
//
// The addresses (a /30 on the veth pair, the tunnel's /24) exist only
// inside the two namespaces, which the test makes and deletes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	vpnServerIP     = "172.31.255.1" // veth, server namespace
	vpnClientIP     = "172.31.255.2" // veth, client namespace
	vpnTunnelNet    = "10.213.0.0"
	vpnServerTunnel = "10.213.0.1"

	radiusPluginSO  = "/usr/lib/openvpn/radiusplugin.so"
	authPAMPluginSO = "/usr/lib/openvpn/openvpn-plugin-auth-pam.so"

	// radiusplugin's client entry: it sends from the server's veth address
	// and never signs requests.
	vpnRadiusSecret = "e2e-openvpn-radiusplugin-secret-0123"

	vpnWait = 30 * time.Second // any one wait on an openvpn
)

var vpnRadiusClient = fmt.Sprintf(`[[client]]
name = "openvpn-radiusplugin"
address = %q
secret = %q
mode = "append"
require_message_authenticator = false
`, vpnServerIP+"/32", vpnRadiusSecret)

func TestHostOpenVPN(t *testing.T) {
	requireHostTests(t)
	for _, tool := range []string{"openvpn", "ip", "openssl", "oathtool", "ping"} {
		requireTool(t, tool)
	}
	requireFile(t, radiusPluginSO, "openvpn-auth-radius")
	requireFile(t, authPAMPluginSO, "openvpn")

	start := time.Now()
	lab := newVPNLab(t)
	t.Logf("namespaces, veth and certificates ready in %v", time.Since(start).Round(time.Millisecond))
	srv := &pamServer{Daemon: lab.startOtpgated(t, vpnRadiusClient+pamRadiusClient), t: t}
	radiusConf := lab.radiusPluginConfig(t)

	t.Run("radiusplugin", func(t *testing.T) {
		user, pw := randomName("ovpn-r-"), "radius plugin pw"
		b32 := srv.addUser(user, pw)
		lab.startServer(t, "radius", "plugin "+radiusPluginSO+" "+radiusConf)
		lab.checkLogins(t, srv.Daemon, user, b32, func(t *testing.T, code string) vpnClientResult {
			return lab.runClient(t, vpnLogin{user: user, password: pw + code})
		})
		// radiusplugin sent Start at client-connect and Stop at
		// client-disconnect; otpgated answered both (else no tunnel).
		for _, status := range []string{"Start", "Stop"} {
			t.Logf("audit: %s", waitAudit(t, srv.Daemon, fmt.Sprintf(`"status":%q,"user":%q`, status, user)))
		}
	})

	t.Run("auth-pam", func(t *testing.T) {
		user, pw := randomName("ovpn-p-"), "auth pam pw"
		b32 := srv.addUser(user, pw)
		// The packaged stack alone as the service: no account line is
		// added, so the file's own one must satisfy pam_acct_mgmt for a
		// user who is no Unix account.
		service := randomName("otpgate-ovpn-")
		stack := pamExecStack(t, pamHelperConfig(t, srv.Secret, srv.Addr))
		p := filepath.Join("/etc/pam.d", service)
		if err := os.WriteFile(p, []byte(stack), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		lab.startServer(t, "pam", "plugin "+authPAMPluginSO+" "+service)
		lab.checkLogins(t, srv.Daemon, user, b32, func(t *testing.T, code string) vpnClientResult {
			return lab.runClient(t, vpnLogin{user: user, password: pw + code})
		})
	})

	t.Run("static-challenge", func(t *testing.T) {
		user, pw := randomName("ovpn-s-"), "static challenge pw"
		b32 := srv.addUser(user, pw)
		lab.startServer(t, "static", "plugin "+radiusPluginSO+" "+radiusConf)
		lab.checkLogins(t, srv.Daemon, user, b32, func(t *testing.T, code string) vpnClientResult {
			r := lab.runClient(t, vpnLogin{user: user, password: pw, extra: `static-challenge "Enter code" 1`, response: code})
			if !strings.Contains(r.log, "CHALLENGE: Enter code") {
				t.Errorf("the client did not ask for the code:\n%s", r.log)
			}
			return r
		})
	})

	// OpenVPN authenticates again at every TLS renegotiation (reneg-sec,
	// an hour by default), with the password and code it cached: the code
	// is then a replay. auth-gen-token answers renegotiations with a token
	// of the server's own, so otpgated is asked once per connection.
	t.Run("renegotiation", func(t *testing.T) {
		for _, tc := range []struct {
			name, serverExtra string
			survives          bool
		}{
			// Token never expires; renewed at least every 60 s (it must
			// be at least twice hand-window).
			{"with auth-gen-token", "auth-gen-token 0 60", true},
			{"without auth-gen-token", "", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				user, pw := randomName("ovpn-g-"), "renegotiation pw"
				b32 := srv.addUser(user, pw)
				lab.startServer(t, "reneg", "plugin "+radiusPluginSO+" "+radiusConf+"\nreneg-sec 6\nhand-window 3\n"+tc.serverExtra)
				waitStepStart()
				code := totpAt(t, b32, time.Now().Add(30*time.Second))
				start := time.Now()
				r := lab.runClient(t, vpnLogin{user: user, password: pw + code, whileUp: func(p *vpnProc) error {
					if !tc.survives {
						if p.waitFor("AUTH_FAILED") != 0 {
							return errors.New("no AUTH_FAILED after the renegotiation")
						}
						return nil
					}
					// The client checks the server certificate once per
					// TLS handshake: a second check is a renegotiation.
					if !p.waitCount("Certificate has EKU", 2) {
						return errors.New("no renegotiation within " + vpnWait.String())
					}
					time.Sleep(2 * time.Second) // time for a refusal to arrive
					if strings.Contains(p.out.String(), "AUTH_FAILED") {
						return errors.New("AUTH_FAILED at the renegotiation")
					}
					return nil
				}})
				took := time.Since(start).Round(time.Millisecond)
				access := strings.Count(srv.Output(), fmt.Sprintf(`"msg":"radius access","user":%q`, user))
				if tc.survives {
					if !r.pinged {
						t.Fatalf("no ping reply through the tunnel after the renegotiation:\n%s\n%s", r.ping, r.log)
					}
					if access != 1 {
						t.Errorf("otpgated was asked %d times, want once (the token answers the renegotiation)", access)
					}
					t.Logf("renegotiated on the token, ping through the tunnel answered, otpgated asked once (%v)", took)
					return
				}
				line := waitAudit(t, srv.Daemon, fmt.Sprintf(`"msg":"radius access","user":%q,"client":"openvpn-radiusplugin","station":"%s","mode":"append","result":"reject","reason":"code_reused"`, user, vpnClientIP))
				t.Logf("the renegotiation replayed the code and the tunnel closed with AUTH_FAILED (%v): %s", took, line)
			})
		}
	})

	// The two-prompt setup without radiusplugin: static-challenge on the
	// client, auth-pam answering pam_radius_auth's "Password: " with the
	// password and otpgated's challenge ("Enter the 6-digit code ...")
	// with the response (OTP), packaging/pam.d/otpgate-radius as the
	// service and otpgated's challenge mode.
	t.Run("static-challenge auth-pam pam_radius_auth", func(t *testing.T) {
		requirePAMRadius(t)
		user, pw := randomName("ovpn-c-"), "two prompts pw"
		b32 := srv.addUser(user, pw)
		service := randomName("otpgate-ovpn-")
		p := filepath.Join("/etc/pam.d", service)
		if err := os.WriteFile(p, []byte(pamRadiusStack(t, srv.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(p) })
		lab.startServer(t, "pam-radius", fmt.Sprintf("plugin %s \"%s login USERNAME password PASSWORD enter OTP\"", authPAMPluginSO, service))
		lab.checkLogins(t, srv.Daemon, user, b32, func(t *testing.T, code string) vpnClientResult {
			return lab.runClient(t, vpnLogin{user: user, password: pw, extra: `static-challenge "Enter code" 1`, response: code})
		})
	})
}

// checkLogins runs the three logins every variant must get right: password
// + a fresh code brings the tunnel up and a ping crosses it; the same code
// again and a wrong code get AUTH_FAILED. login runs one client with code.
func (l *vpnLab) checkLogins(t *testing.T, d *Daemon, user, b32 string, login func(t *testing.T, code string) vpnClientResult) {
	t.Helper()
	// Enrollment used the current step's code: log in with the next one
	// (skew 1 accepts it).
	waitStepStart()
	code := totpAt(t, b32, time.Now().Add(30*time.Second))
	steps := []struct {
		name, code, reason string
		up                 bool
	}{
		{"password and code", code, "", true},
		{"the same code again", code, "code_reused", false},
		{"a wrong code", wrongCode(t, b32), "bad_code", false},
	}
	for _, s := range steps {
		start := time.Now()
		before := strings.Count(d.Output(), `"msg":"radius access"`)
		r := login(t, s.code)
		took := time.Since(start).Round(time.Millisecond)
		switch {
		case s.up && !r.up:
			t.Fatalf("%s: the tunnel did not come up:\n%s\notpgated:\n%s", s.name, r.log, d.Output())
		case s.up:
			if !r.pinged {
				t.Errorf("%s: tunnel up but no ping reply from %s:\n%s", s.name, vpnServerTunnel, r.ping)
			}
			t.Logf("%s: tunnel up, ping through it answered (%v)", s.name, took)
		case r.up || !r.authFailed:
			t.Fatalf("%s: want AUTH_FAILED, got up=%v:\n%s", s.name, r.up, r.log)
		default:
			t.Logf("%s: AUTH_FAILED (%v)", s.name, took)
		}
		if s.reason != "" {
			audit := d.Output()
			want := fmt.Sprintf(`"user":%q`, user)
			var line string
			for _, l := range strings.Split(audit, "\n") {
				if strings.Contains(l, `"msg":"radius access"`) && strings.Contains(l, want) {
					line = l
				}
			}
			if strings.Count(audit, `"msg":"radius access"`) <= before || !strings.Contains(line, `"reason":"`+s.reason+`"`) {
				t.Errorf("%s: the last audit line for %s is %q, want reason %s", s.name, user, line, s.reason)
			}
		}
	}
}

// waitAudit waits up to vpnWait for a line of otpgated's output that
// contains s, and returns it.
func waitAudit(t *testing.T, d *Daemon, s string) string {
	t.Helper()
	deadline := time.Now().Add(vpnWait)
	for {
		for _, line := range strings.Split(d.Output(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit line with %s within %v:\n%s", s, vpnWait, d.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vpnLab is the two namespaces, the veth pair between them and a throwaway
// PKI, all removed when the test ends.
type vpnLab struct {
	dir      string
	nsServer string
	nsClient string
}

func newVPNLab(t *testing.T) *vpnLab {
	t.Helper()
	id := randomName("")
	l := &vpnLab{dir: t.TempDir(), nsServer: "otpgate-vpn-s-" + id, nsClient: "otpgate-vpn-c-" + id}
	vethS, vethC := "ogvs"+id, "ogvc"+id // at most 15 characters
	// Registered before anything exists, so a failure half way still
	// removes what was made. Deleting a namespace deletes its veth end
	// and with it the pair.
	t.Cleanup(func() {
		for _, ns := range []string{l.nsServer, l.nsClient} {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
		_ = exec.Command("ip", "link", "del", vethS).Run() // only if it never moved
	})
	for _, args := range [][]string{
		{"netns", "add", l.nsServer},
		{"netns", "add", l.nsClient},
		{"link", "add", vethS, "type", "veth", "peer", "name", vethC},
		{"link", "set", vethS, "netns", l.nsServer},
		{"link", "set", vethC, "netns", l.nsClient},
		{"-n", l.nsServer, "addr", "add", vpnServerIP + "/30", "dev", vethS},
		{"-n", l.nsClient, "addr", "add", vpnClientIP + "/30", "dev", vethC},
		{"-n", l.nsServer, "link", "set", "lo", "up"},
		{"-n", l.nsClient, "link", "set", "lo", "up"},
		{"-n", l.nsServer, "link", "set", vethS, "up"},
		{"-n", l.nsClient, "link", "set", vethC, "up"},
	} {
		run(t, "ip", args...)
	}
	l.makePKI(t)
	return l
}

// run runs a command with a time limit and fails the test on an error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// makePKI makes a throwaway CA, a server and a client certificate (P-256,
// valid a day) and a tls-crypt key in the lab directory.
func (l *vpnLab) makePKI(t *testing.T) {
	t.Helper()
	p := func(name string) string { return filepath.Join(l.dir, name) }
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	run(t, "openssl", append(append([]string{"req", "-x509"}, ec...),
		"-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "1", "-subj", "/CN=otpgate e2e throwaway CA")...)
	for _, c := range []struct{ name, eku string }{{"server", "serverAuth"}, {"client", "clientAuth"}} {
		ext := p(c.name + ".ext")
		if err := os.WriteFile(ext, []byte("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage="+c.eku+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, "openssl", append(append([]string{"req"}, ec...),
			"-keyout", p(c.name+".key"), "-out", p(c.name+".csr"), "-subj", "/CN=otpgate-e2e-"+c.name)...)
		run(t, "openssl", "x509", "-req", "-in", p(c.name+".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
			"-CAcreateserial", "-days", "1", "-extfile", ext, "-out", p(c.name+".crt"))
	}
	run(t, "openvpn", "--genkey", "secret", p("tc.key"))
}

// startOtpgated runs otpgated inside the server namespace: the harness's
// config (RADIUS on 127.0.0.1 for otpgate-pam, the "localhost" client, then
// extraToml) plus RADIUS and accounting on the server's veth address for
// radiusplugin. It is startDaemon with `ip netns exec` in front.
func (l *vpnLab) startOtpgated(t *testing.T, extraToml string) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d := &Daemon{
		t:       t,
		Dir:     dir,
		Config:  filepath.Join(dir, "radiusd.toml"),
		Addr:    "127.0.0.1:1812", // inside the server namespace: every port is free
		Metrics: "127.0.0.1:9812",
		Socket:  filepath.Join(dir, "data", "control.sock"),
		Secret:  daemonSecret,
		out:     &lockedBuffer{},
		exited:  make(chan struct{}),
	}
	cfg := daemonConfig(1812, 9812, extraToml)
	cfg = replaceOnce(t, cfg, `listen = ["127.0.0.1:1812"]`, `listen = ["127.0.0.1:1812", "`+vpnServerIP+`:1812"]`)
	cfg = replaceOnce(t, cfg, `acct_listen = ["127.0.0.1:0"]`, `acct_listen = ["`+vpnServerIP+`:1813"]`)
	if err := os.WriteFile(d.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs otpgated: the signals of Stop reach it.
	d.start("ip", "netns", "exec", l.nsServer, bin("otpgated"), "-config", d.Config)
	return d
}

// radiusPluginConfig writes radiusplugin's config: otpgated on the
// server's veth address for authentication and accounting.
func (l *vpnLab) radiusPluginConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(l.dir, "radiusplugin.cnf")
	text := fmt.Sprintf(`NAS-Identifier=otpgate-e2e-openvpn
Service-Type=5
Framed-Protocol=1
NAS-Port-Type=5
NAS-IP-Address=%[1]s
OpenVPNConfig=%[2]s
subnet=255.255.255.0
overwriteccfiles=false
server
{
	acctport=1813
	authport=1812
	name=%[1]s
	retry=1
	wait=3
	sharedsecret=%[3]s
}
`, vpnServerIP, filepath.Join(l.dir, "server.conf"), vpnRadiusSecret)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// vpnProc is an openvpn process and what it printed.
type vpnProc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

// stop ends the process with SIGTERM (SIGKILL after 5 s) and waits for it.
func (p *vpnProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitFor waits up to vpnWait for one of the patterns; it returns the
// index of the first that appeared, or -1 when the process exited or the
// time ran out first.
func (p *vpnProc) waitFor(patterns ...string) int {
	deadline := time.Now().Add(vpnWait)
	for time.Now().Before(deadline) {
		out := p.out.String()
		for i, s := range patterns {
			if strings.Contains(out, s) {
				return i
			}
		}
		select {
		case <-p.exited:
			out = p.out.String()
			for i, s := range patterns {
				if strings.Contains(out, s) {
					return i
				}
			}
			return -1
		case <-time.After(50 * time.Millisecond):
		}
	}
	return -1
}

// waitCount waits up to vpnWait until s appears n times in the output.
func (p *vpnProc) waitCount(s string, n int) bool {
	deadline := time.Now().Add(vpnWait)
	for strings.Count(p.out.String(), s) < n {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-p.exited:
			return strings.Count(p.out.String(), s) >= n
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// startOpenVPN starts openvpn with conf in namespace ns. With tty set it
// runs on a new pseudo-terminal (its controlling terminal, where it asks
// for a static-challenge response) and tty receives its master side.
func startOpenVPN(t *testing.T, ns, conf string, tty **os.File) *vpnProc {
	t.Helper()
	p := &vpnProc{out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", ns, "openvpn", "--config", conf)
	if tty == nil {
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start openvpn: %v", err)
		}
	} else {
		master, slave, err := openPTY()
		if err != nil {
			t.Fatalf("pseudo-terminal: %v", err)
		}
		p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		err = p.cmd.Start()
		slave.Close()
		if err != nil {
			master.Close()
			t.Fatalf("start openvpn: %v", err)
		}
		go func() { _, _ = io.Copy(p.out, master) }() // ends with EIO when openvpn exits
		*tty = master
		t.Cleanup(func() { master.Close() })
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

// openPTY opens a pseudo-terminal pair (posix_openpt, unlockpt, ptsname).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// startServer runs an OpenVPN server in the server namespace with the
// given auth plugin line until the (sub)test ends.
func (l *vpnLab) startServer(t *testing.T, name, pluginLine string) {
	t.Helper()
	dir := filepath.Join(l.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// radiusplugin reads the server config at OpenVPNConfig (for status):
	// the same file at l.dir/server.conf each time.
	conf := filepath.Join(l.dir, "server.conf")
	text := fmt.Sprintf(`# otpgate e2e: OpenVPN server for %[1]s
mode server
tls-server
proto udp
local %[2]s
port 1194
dev tun
topology subnet
server %[3]s 255.255.255.0
ca %[4]s/ca.crt
cert %[4]s/server.crt
key %[4]s/server.key
dh none
tls-crypt %[4]s/tc.key
keepalive 2 10
status %[5]s/status.log 1
status-version 1
tmp-dir %[5]s
verb 4
%[6]s
`, name, vpnServerIP, vpnTunnelNet, l.dir, dir, pluginLine)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startOpenVPN(t, l.nsServer, conf, nil)
	if p.waitFor("Initialization Sequence Completed") != 0 {
		t.Fatalf("the OpenVPN server did not start within %v:\n%s", vpnWait, p.out.String())
	}
	t.Logf("OpenVPN server with %s up in %v", name, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("OpenVPN server log:\n%s", p.out.String())
		}
	})
}

// vpnClientResult is how one client run ended.
type vpnClientResult struct {
	up, authFailed, pinged bool
	log, ping              string
}

// vpnLogin is one client run.
type vpnLogin struct {
	user, password string // the auth-user-pass file
	extra          string // more client config
	response       string // typed at the static-challenge prompt, if set
	// whileUp, if set, runs once the tunnel is up, before the ping; an
	// error fails the test.
	whileUp func(p *vpnProc) error
}

// runClient connects a client from the client namespace. Once the tunnel
// is up it pings the server's tunnel address, then disconnects.
func (l *vpnLab) runClient(t *testing.T, login vpnLogin) vpnClientResult {
	t.Helper()
	user, password, extra, response := login.user, login.password, login.extra, login.response
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.txt")
	if err := os.WriteFile(authFile, []byte(user+"\n"+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "client.conf")
	text := fmt.Sprintf(`client
proto udp
remote %[1]s 1194
dev tun
nobind
ca %[2]s/ca.crt
cert %[2]s/client.crt
key %[2]s/client.key
tls-crypt %[2]s/tc.key
remote-cert-tls server
auth-user-pass %[3]s
auth-retry none
explicit-exit-notify 1
connect-retry-max 3
verb 3
%[4]s
`, vpnServerIP, l.dir, authFile, extra)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var tty *os.File
	var ttyp **os.File
	if response != "" {
		ttyp = &tty
	}
	p := startOpenVPN(t, l.nsClient, conf, ttyp)
	if response != "" {
		if p.waitFor("CHALLENGE: Enter code") != 0 {
			p.stop()
			t.Fatalf("no static-challenge prompt within %v:\n%s", vpnWait, p.out.String())
		}
		if _, err := io.WriteString(tty, response+"\n"); err != nil {
			t.Fatalf("answer the prompt: %v", err)
		}
	}
	var r vpnClientResult
	switch p.waitFor("Initialization Sequence Completed", "AUTH_FAILED") {
	case 0:
		r.up = true
		if login.whileUp != nil {
			if err := login.whileUp(p); err != nil {
				p.stop()
				t.Fatalf("%v:\n%s", err, p.out.String())
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.nsClient, "ping", "-c", "2", "-W", "2", vpnServerTunnel).CombinedOutput()
		cancel()
		r.ping = string(out)
		r.pinged = err == nil && regexp.MustCompile(`[1-9]\d* received`).MatchString(r.ping)
	case 1:
		r.authFailed = true
	}
	p.stop()
	r.log = p.out.String()
	return r
}
