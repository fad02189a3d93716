package e2e

// A real sshd on 127.0.0.1 with PAM stacks from packaging/pam.d/ and the
// settings of packaging/sshd_config.d/otpgate.conf, logged into with
// golang.org/x/crypto/ssh (keyboard-interactive, public key).
//
// sshd names its PAM service after its program name (OpenSSH's
// SSHD_PAM_SERVICE defaults to __progname), so each sshd here runs through a
// symlink called otpgate-test-<random> and reads /etc/pam.d/ of that name:
// the host's /etc/pam.d/sshd is never touched.

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"golang.org/x/crypto/ssh"
)

// sshServer is one sshd process for one test.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	log     *lockedBuffer
}

// startSSHD runs sshd on 127.0.0.1 with the PAM auth stack authStack and the
// packaged sshd snippet, whose AuthenticationMethods is set to methods.
func startSSHD(t *testing.T, authStack, methods string) *sshServer {
	t.Helper()
	sshd := requireTool(t, "sshd")
	keygen := requireTool(t, "ssh-keygen")
	service := installPAMService(t, authStack)

	dir := t.TempDir()
	link := filepath.Join(dir, service) // argv[0] = the PAM service name
	if err := os.Symlink(sshd, link); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pubText, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	// The privilege separation directory sshd insists on.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}

	snippet := readPackaging(t, "sshd_config.d/otpgate.conf")
	snippet = replaceOnce(t, snippet, "\nAuthenticationMethods keyboard-interactive\n", "\nAuthenticationMethods "+methods+"\n")
	port := testtool.FreePort(t, "tcp")
	cfg := fmt.Sprintf(`# written by otpgate's e2e tests
ListenAddress 127.0.0.1:%d
HostKey %s
PidFile none
PermitRootLogin no
StrictModes yes
MaxAuthTries 6
LogLevel VERBOSE
%s`, port, hostKey, snippet)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(link, "-t", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}

	s := &sshServer{addr: "127.0.0.1:" + strconv.Itoa(port), hostKey: pub, log: &lockedBuffer{}}
	cmd := exec.Command(link, "-D", "-e", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("sshd exited:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s:\n%s", s.addr, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// addUnixUser creates a local user (removed with its home in Cleanup).
func addUnixUser(t *testing.T, name string) string {
	t.Helper()
	useradd := requireTool(t, "useradd")
	userdel := requireTool(t, "userdel")
	if out, err := exec.Command(useradd, "-m", "-s", "/bin/sh", "-c", "otpgate e2e test", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		// sshd's session processes may linger a moment after the client leaves.
		for try := 0; try < 20; try++ {
			if exec.Command(userdel, "-r", name).Run() == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("userdel -r %s failed; remove the user by hand", name)
	})
	home := filepath.Join("/home", name)
	if fileExists(home) {
		return home
	}
	t.Fatalf("useradd -m made no %s", home)
	return ""
}

// authorizeKey makes a fresh ed25519 key, puts it in the user's
// authorized_keys and returns its signer.
func authorizeKey(t *testing.T, user, home string) ssh.Signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dotSSH := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dotSSH, 0o700); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(dotSSH, "authorized_keys")
	if err := os.WriteFile(ak, ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dotSSH, ak} {
		if out, err := exec.Command("chown", user+":", p).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}
	return signer
}

// sshLogin logs in as user; answers are given, in order, to the
// keyboard-interactive questions. On success it runs `id -un` to show the
// session is the user's. It returns the prompts seen and the error.
func sshLogin(t *testing.T, s *sshServer, user string, key ssh.Signer, answers ...string) ([]string, error) {
	t.Helper()
	var prompts []string
	err := sshLoginFunc(t, s, user, key, func(_, q string) (string, error) {
		prompts = append(prompts, q)
		if len(prompts) > len(answers) {
			return "", fmt.Errorf("unexpected prompt %q", q)
		}
		return answers[len(prompts)-1], nil
	})
	return prompts, err
}

// sshLoginFunc logs in as user, with key first when not nil, then with
// keyboard-interactive, each question answered by answer (an error ends
// the login). On success it runs `id -un` to show the session is the
// user's.
func sshLoginFunc(t *testing.T, s *sshServer, user string, key ssh.Signer, answer func(instruction, question string) (string, error)) error {
	t.Helper()
	kbd := ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		out := make([]string, len(questions))
		for i, q := range questions {
			a, err := answer(instruction, q)
			if err != nil {
				return nil, err
			}
			out[i] = a
		}
		return out, nil
	})
	var methods []ssh.AuthMethod
	if key != nil {
		methods = append(methods, ssh.PublicKeys(key))
	}
	methods = append(methods, kbd)
	client, err := ssh.Dial("tcp", s.addr, &ssh.ClientConfig{
		User:            user,
		Auth:            methods,
		HostKeyCallback: ssh.FixedHostKey(s.hostKey),
		Timeout:         60 * time.Second, // connecting only; a first login's enrollment may be slow
	})
	if err != nil {
		return err
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("logged in, but no session: %w", err)
	}
	defer sess.Close()
	out, err := sess.Output("id -un")
	if err != nil {
		return fmt.Errorf("logged in, but id -un failed: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != user {
		return fmt.Errorf("logged in as %q, want %q", got, user)
	}
	return nil
}

// TestHostSSH logs into a real sshd three ways, each with a right, a wrong
// and a replayed code. It adds Unix users and a PAM service in /etc/pam.d.
func TestHostSSH(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "sshd")
	requireTool(t, "oathtool")
	requireTool(t, "pamtester") // not used here, but the same stacks are: keep CI honest

	// One otpgated for password+code (pam_exec from 127.0.0.1, the
	// "localhost" client, append) and pam_radius_auth (from 127.0.0.2,
	// challenge, no Message-Authenticator); a second one whose clients are
	// otp-only, for public key + code. A client entry has one mode, so (a) and
	// (b) cannot share a server.
	both := newPamServer(t, "[auth]\nmode = \"append\"\n\n"+pamRadiusClient)
	otpOnly := newPamServer(t, "[auth]\nmode = \"otp-only\"\n")

	const pw = "Tr0ub4dor&3"
	userA, userB, userC := randomName("otpga"), randomName("otpgb"), randomName("otpgc")
	keyA := both.addUser(userA, pw)
	keyC := both.addUser(userC, pw)
	keyB := otpOnly.addUser(userB, "")
	addUnixUser(t, userA)
	homeB := addUnixUser(t, userB)
	addUnixUser(t, userC)
	signerB := authorizeKey(t, userB, homeB)

	waitStepStart()
	next := time.Now().Add(30 * time.Second) // the step after the enrollment's

	t.Run("password+code through otpgate-pam", func(t *testing.T) {
		s := startSSHD(t, pamExecStack(t, pamHelperConfig(t, both.Secret, both.Addr)), "keyboard-interactive")
		code := totpAt(t, keyA, next)
		if _, err := sshLogin(t, s, userA, nil, pw+wrongCode(t, keyA)); err == nil {
			t.Error("logged in with a wrong code")
		}
		prompts, err := sshLogin(t, s, userA, nil, pw+code)
		if err != nil {
			t.Fatalf("right password+code refused: %v (prompts %q)", err, prompts)
		}
		if len(prompts) != 1 || !strings.Contains(prompts[0], "Password") {
			t.Errorf("prompts = %q; want the one Password: prompt", prompts)
		}
		if _, err := sshLogin(t, s, userA, nil, pw+code); err == nil {
			t.Error("logged in again with a replayed code")
		}
		if got := auditReason(t, both, userA, "code_reused"); got != "code_reused" {
			t.Errorf("the replay was refused with audit reason %q; want code_reused", got)
		}
	})

	t.Run("public key then code through otpgate-pam", func(t *testing.T) {
		s := startSSHD(t, pamExecStack(t, pamHelperConfig(t, otpOnly.Secret, otpOnly.Addr)), "publickey,keyboard-interactive")
		code := totpAt(t, keyB, next)
		if _, err := sshLogin(t, s, userB, nil, code); err == nil {
			t.Error("logged in with the code alone, without the key")
		}
		if _, err := sshLogin(t, s, userB, signerB, wrongCode(t, keyB)); err == nil {
			t.Error("logged in with the key and a wrong code")
		}
		prompts, err := sshLogin(t, s, userB, signerB, code)
		if err != nil {
			t.Fatalf("key + right code refused: %v (prompts %q)", err, prompts)
		}
		if len(prompts) != 1 {
			t.Errorf("prompts = %q; want one", prompts)
		}
		if _, err := sshLogin(t, s, userB, signerB, code); err == nil {
			t.Error("logged in again with a replayed code")
		}
		if got := auditReason(t, otpOnly, userB, "code_reused"); got != "code_reused" {
			t.Errorf("the replay was refused with audit reason %q; want code_reused", got)
		}
	})

	t.Run("password then code prompt through pam_radius_auth", func(t *testing.T) {
		s := startSSHD(t, pamRadiusStack(t, both.Addr), "keyboard-interactive")
		code := totpAt(t, keyC, next)
		if _, err := sshLogin(t, s, userC, nil, pw, wrongCode(t, keyC)); err == nil {
			t.Error("logged in with a wrong code")
		}
		prompts, err := sshLogin(t, s, userC, nil, pw, code)
		if err != nil {
			t.Fatalf("password, then right code refused: %v (prompts %q)", err, prompts)
		}
		if len(prompts) != 2 || !strings.Contains(prompts[0], "Password") {
			t.Errorf("prompts = %q; want Password: then the code prompt", prompts)
		}
		if _, err := sshLogin(t, s, userC, nil, pw, code); err == nil {
			t.Error("logged in again with a replayed code")
		}
		if got := auditReason(t, both, userC, "code_reused"); got != "code_reused" {
			t.Errorf("the replay was refused with audit reason %q; want code_reused", got)
		}
	})
}
