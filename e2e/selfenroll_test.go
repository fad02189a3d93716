package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/testtool"
)

func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// startDaemonAt is startDaemon for a config whose control.socket is
// socket.
func startDaemonAt(t *testing.T, socket, extraToml string) *Daemon {
	t.Helper()
	dir := t.TempDir()
	d := &Daemon{
		t:       t,
		Dir:     dir,
		Config:  filepath.Join(dir, "radiusd.toml"),
		Addr:    fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp")),
		Metrics: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "tcp")),
		Socket:  socket,
		Secret:  daemonSecret,
		out:     &lockedBuffer{},
		exited:  make(chan struct{}),
	}
	d.WriteConfig(extraToml)
	d.start(bin("otpgated"), "-config", d.Config)
	return d
}

// TestHostSelfEnrollFromOwnShell: a real unprivileged Unix user runs
// `otpgate enroll` (no NAME) in a terminal, reads the key off the screen,
// types oathtool's code and gets recovery codes; enrolling again is
// refused, and every admin endpoint is out of that user's reach on both
// sockets (curl as the user, over the admin socket's route table).
func TestHostSelfEnrollFromOwnShell(t *testing.T) {
	requireHostTests(t)
	requireTool(t, "oathtool")
	requireTool(t, "tmux")
	runuser := requireTool(t, "runuser")
	curl := requireTool(t, "curl")
	const name = "otpgself"
	addUnixUser(t, name)

	run := testtool.PublicTempDir(t, "otpgate-e2e-run-") // sockets and a binary an unprivileged user reaches
	selfSock := filepath.Join(run, "enroll.sock")
	adminSock := filepath.Join(run, "control.sock")
	d := startDaemonAt(t, adminSock, fmt.Sprintf("[control]\nsocket = %q\nenroll_socket = %q\n", adminSock, selfSock))
	if fi, err := os.Lstat(selfSock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("self-enrollment socket: %v, %v", fi, err)
	}
	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin("otpgate"), append([]string{"-config", d.Config}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("otpgate %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	admin("user", "add", name, "--no-password")

	// What the user runs: a copy of otpgate they may execute, and a
	// config they may read that names only the self-enrollment socket.
	otpgate := filepath.Join(run, "otpgate")
	copyExecutable(t, bin("otpgate"), otpgate)
	userCfg := filepath.Join(run, "user.toml")
	if err := os.WriteFile(userCfg, []byte(fmt.Sprintf("version = 1\ndata_dir = %q\n[control]\nsocket = %q\nenroll_socket = %q\n", filepath.Join(d.Dir, "data"), adminSock, selfSock)), 0o644); err != nil {
		t.Fatal(err)
	}
	asUser := func(args ...string) []string {
		return append([]string{runuser, "-u", name, "--"}, args...)
	}

	s := startTmux(t, "cd /tmp && "+shellQuote(asUser(otpgate, "-config", userCfg, "enroll")...))
	scr := s.waitFor(codePromptRe, 1)
	if !strings.Contains(scr, "Enrolling "+name) || !strings.Contains(scr, "Account: otpgate-e2e:"+name) {
		t.Fatalf("the screen does not name the user:\n%s", scr)
	}
	m := keyLineRe.FindStringSubmatch(scr)
	if m == nil {
		t.Fatalf("no key on the screen:\n%s", scr)
	}
	s.typeLine(oathtoolCode(t, strings.ReplaceAll(m[1], " ", "")))
	scr = s.waitFor(exitRe, 1)
	if got := exitRe.FindStringSubmatch(scr)[1]; got != "0" {
		t.Fatalf("self-enrollment exited %s:\n%s", got, scr)
	}
	if n := len(recoveryCodeRe.FindAllString(scr, -1)); n != 10 {
		t.Errorf("%d recovery codes on the screen, want 10", n)
	}
	svc, err := control.Dial(adminSock)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := svc.ShowUser(context.Background(), name); err != nil || !u.Enrolled {
		t.Fatalf("after self-enrollment: %+v, %v", u, err)
	}

	// Enrolling again (a replacement) is the admin's.
	out, err := exec.Command(asUser(otpgate, "-config", userCfg, "enroll")[0], asUser(otpgate, "-config", userCfg, "enroll")[1:]...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already have an active token") || !strings.Contains(string(out), "administrator to reset") {
		t.Fatalf("second self-enrollment: %v\n%s", err, out)
	}

	// Every admin endpoint: on the self-enrollment socket it does not
	// exist; the admin socket does not let the user in at all.
	routes := control.AdminRoutes()
	if len(routes) < 15 {
		t.Fatalf("only %d admin routes", len(routes))
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt, " ")
		path = strings.ReplaceAll(path, "{name}", name)
		for _, sock := range []string{selfSock, adminSock} {
			argv := asUser(curl, "-sS", "--max-time", "5", "--unix-socket", sock, "-X", method,
				"-H", "Content-Type: application/json", "--data", "{}", "-w", "\nHTTP=%{http_code}", "http://"+control.Host+path)
			if method == "GET" || method == "DELETE" {
				argv = asUser(curl, "-sS", "--max-time", "5", "--unix-socket", sock, "-X", method, "-w", "\nHTTP=%{http_code}", "http://"+control.Host+path)
			}
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			switch sock {
			case selfSock:
				if err != nil || !strings.Contains(string(out), "HTTP=404") || !strings.Contains(string(out), "serves only") {
					t.Errorf("%s on the self-enrollment socket as %s: %v\n%s", rt, name, err, out)
				}
			case adminSock:
				if err == nil && !regexp.MustCompile(`HTTP=(000|403)`).Match(out) {
					t.Errorf("%s on the admin socket as %s was not refused:\n%s", rt, name, out)
				}
			}
		}
	}
	// The admin CLI as that user is refused too, and says so.
	out, err = exec.Command(asUser(otpgate, "-config", userCfg, "user", "list")[0], asUser(otpgate, "-config", userCfg, "user", "list")[1:]...).CombinedOutput()
	if err == nil || strings.Contains(string(out), name+" ") {
		t.Fatalf("user list as %s: %v\n%s", name, err, out)
	}
	if u, err := svc.ShowUser(context.Background(), name); err != nil || !u.Enrolled || u.Disabled {
		t.Fatalf("the user's calls changed something: %+v, %v", u, err)
	}
}
