package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// runOtpgated runs otpgated to completion with a time limit and returns
// its exit code and combined output.
func runOtpgated(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("otpgated"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("otpgated %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("otpgated %v did not finish in 20 s", args)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestDaemonCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := daemonConfig(1812, 9812, "")
	write("vpn.secret", "vpn-secret-from-file-0123456789\n", 0o644)
	tests := []struct {
		name       string
		config     string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"good", good, 0, "OK (1 clients; radius 127.0.0.1:1812; metrics 127.0.0.1:9812; db " + filepath.Join(dir, "data", "otpgate.db"), ""},
		{"warning", strings.Replace(good, daemonSecret, "short-secret-18byt", 1), 0, "OK", `warning: client[0].secret: is 18 bytes; 24 or more are recommended`},
		{"unknown key", strings.Replace(good, `secret = "`, `secrt = "`, 1), 1, "", `unknown key "client[0].secrt"`},
		{"bad cidr", good + "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.0/33\"\nsecret = \"0123456789abcdefghijklmnop\"\n", 1, "", `client[1].address: "10.0.0.0/33": invalid CIDR`},
		{"no version", strings.Replace(good, "version = 1", "", 1), 1, "", `missing "version = 1"`},
		{"version 2", strings.Replace(good, "version = 1", "version = 2", 1), 1, "", `version = 2 is not supported`},
		{"secret file readable by others", good + "[[client]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"vpn.secret\"\n", 1, "",
			"client[1].secret_file: " + filepath.Join(dir, "vpn.secret") + " is readable by others (mode 0644); run: chmod 640"},
		{"metrics not loopback", strings.Replace(good, `listen = "127.0.0.1:9812"`, `listen = "0.0.0.0:9812"`, 1), 1, "", `metrics.listen: "0.0.0.0:9812" must be a loopback address`},
		{"syntax", good + "[auth\n", 1, "", "toml: line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write("radiusd.toml", tt.config, 0o600)
			code, stdout, stderr := runOtpgated(t, "-check", "-config", p)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantStdout)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantStderr)
			}
			if strings.Contains(stdout+stderr, daemonSecret) {
				t.Errorf("-check printed the shared secret")
			}
		})
	}
	// -check neither opens the store nor binds: no data directory appears.
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("-check created the data directory (%v)", err)
	}

	t.Run("sample radiusd.toml", func(t *testing.T) {
		// Private, as make run makes it: the sample holds its secret inline.
		sample := testtool.SampleConfig(t, "../radiusd.toml", 0o600)
		code, stdout, stderr := runOtpgated(t, "-check", "-config", sample)
		if code != 0 || stderr != "" {
			t.Errorf("-check ../radiusd.toml = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		// As a checkout leaves it, readable by all: refused, with the fix.
		sample = testtool.SampleConfig(t, "../radiusd.toml", 0o644)
		code, _, stderr = runOtpgated(t, "-check", "-config", sample)
		if code != 1 || !strings.Contains(stderr, "holds the secret inline and is readable by others (mode 0644); run: chmod 640 "+sample) {
			t.Errorf("-check on a 0644 copy of the sample = %d, stderr %q; want 1 and the inline-secret refusal", code, stderr)
		}
	})
	t.Run("inline secret in a config others can read", func(t *testing.T) {
		p := write("radiusd.toml", good, 0o644)
		code, _, stderr := runOtpgated(t, "-check", "-config", p)
		if code != 1 || !strings.Contains(stderr, "client[0].secret: "+p+" holds the secret inline and is readable by others (mode 0644)") {
			t.Errorf("-check = %d, stderr %q; want the refusal secret_file gets", code, stderr)
		}
		if strings.Contains(stderr, daemonSecret) {
			t.Error("-check printed the shared secret")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := runOtpgated(t, "-check", "-config", filepath.Join(dir, "nope.toml"))
		if code != 1 || !strings.Contains(stderr, "no such file") {
			t.Errorf("exit %d, stderr %q; want 1 and a no-such-file message", code, stderr)
		}
	})
	t.Run("no config found", func(t *testing.T) {
		if _, err := os.Stat("/etc/otpgate/radiusd.toml"); err == nil {
			t.Skip("/etc/otpgate/radiusd.toml exists on this machine")
		}
		cmd := exec.Command(bin("otpgated"), "-check")
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "tried /etc/otpgate/radiusd.toml, ./radiusd.toml") {
			t.Errorf("-check without a config: %v\n%s", err, out)
		}
	})
	t.Run("flags", func(t *testing.T) {
		if code, stdout, _ := runOtpgated(t, "-version"); code != 0 || !strings.HasPrefix(stdout, "otpgated ") {
			t.Errorf("-version = %d %q", code, stdout)
		}
		if code, _, stderr := runOtpgated(t, "-bogus"); code != 2 || !strings.Contains(stderr, "Usage: otpgated") {
			t.Errorf("-bogus = %d %q, want 2 and usage", code, stderr)
		}
	})
}

func TestDaemonStartStop(t *testing.T) {
	d := startDaemon(t, "", "")
	out := d.Output()
	started := regexp.MustCompile(`msg="otpgated started" .*radius=\[?127\.0\.0\.1:\d+\]? clients=1 db=\S+otpgate\.db control=\S+control\.sock metrics=127\.0\.0\.1:\d+`)
	if !started.MatchString(out) {
		t.Errorf("no startup line with listen addresses, client count, paths and the log's write method:\n%s", out)
	}
	if strings.Contains(out, daemonSecret) {
		t.Error("the daemon logged the shared secret")
	}
	modes := []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(d.Dir, "data"), 0o700 | os.ModeDir},
		{filepath.Join(d.Dir, "data", "seed.key"), 0o600},
		{filepath.Join(d.Dir, "data", "otpgate.db"), 0o600},
		{d.Socket, 0o600 | os.ModeSocket},
	}
	for _, m := range modes {
		fi, err := os.Lstat(m.path)
		if err != nil {
			t.Errorf("%s: %v", m.path, err)
			continue
		}
		if fi.Mode() != m.mode {
			t.Errorf("%s: mode %v, want %v", m.path, fi.Mode(), m.mode)
		}
	}
	if fi, err := os.Stat(filepath.Join(d.Dir, "data", "seed.key")); err == nil && fi.Size() != 32 {
		t.Errorf("seed.key is %d bytes, want 32", fi.Size())
	}

	d.Stop() // checks exit 0 and the socket gone
	out = d.Output()
	for _, want := range []string{`msg="otpgated shutting down"`, `msg="otpgated stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	// The key and the database survive a restart in the same directory.
	key1, _ := os.ReadFile(filepath.Join(d.Dir, "data", "seed.key"))
	d2 := startDaemon(t, d.Dir, "")
	d2.Stop()
	key2, _ := os.ReadFile(filepath.Join(d.Dir, "data", "seed.key"))
	if len(key1) != 32 || !bytes.Equal(key1, key2) {
		t.Error("seed.key changed across a restart")
	}
}

func TestDaemonStartFailures(t *testing.T) {
	t.Run("radius port in use", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		dir := t.TempDir()
		cfg := filepath.Join(dir, "radiusd.toml")
		port := pc.LocalAddr().(*net.UDPAddr).Port
		if err := os.WriteFile(cfg, []byte(daemonConfig(port, testtool.FreePort(t, "tcp"), "")), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runOtpgated(t, "-config", cfg)
		if code != 1 || !strings.Contains(stderr, fmt.Sprintf("radius: listen 127.0.0.1:%d", port)) || !strings.Contains(stderr, "address already in use") {
			t.Errorf("exit %d, stderr:\n%s\nwant 1 and the address in use", code, stderr)
		}
		if _, err := os.Lstat(filepath.Join(dir, "data", "control.sock")); !os.IsNotExist(err) {
			t.Errorf("failed start left a control socket (%v)", err)
		}
	})
	t.Run("second daemon on the same data", func(t *testing.T) {
		d := startDaemon(t, "", "")
		// Same data_dir, other ports: the store lock stops it.
		other := filepath.Join(d.Dir, "second.toml")
		text := strings.Replace(daemonConfig(testtool.FreePort(t, "udp"), testtool.FreePort(t, "tcp"), ""), `data_dir = "data"`, `data_dir = "data"`, 1)
		if err := os.WriteFile(other, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runOtpgated(t, "-config", other)
		if code != 1 || !strings.Contains(stderr, "database is in use by another process") {
			t.Errorf("second daemon: exit %d, stderr:\n%s", code, stderr)
		}
		// The first daemon still owns its socket and answers.
		if _, err := os.Lstat(d.Socket); err != nil {
			t.Errorf("first daemon lost its control socket: %v", err)
		}
	})
}

// statusFrom sends a Status-Server from src with secret and reports whether
// an Access-Accept came back.
func statusFrom(t *testing.T, d *Daemon, src, secret string) (bool, string) {
	t.Helper()
	rc := requireTool(t, "radclient")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rc, "-x", "-r", "1", "-t", "1", d.Addr, "status", secret)
	cmd.Stdin = strings.NewReader("Message-Authenticator = 0x00, Packet-Src-IP-Address = " + src + "\n")
	out, _ := cmd.CombinedOutput()
	return strings.Contains(string(out), "Received Access-Accept"), string(out)
}

func TestDaemonReload(t *testing.T) {
	requireTool(t, "radclient")
	const secret2 = "e2e-second-client-secret-0123456"
	d := startDaemon(t, "", "")
	if ok, out := statusFrom(t, d, "127.0.0.1", d.Secret); !ok {
		t.Fatalf("no answer from the configured client:\n%s", out)
	}
	if ok, out := statusFrom(t, d, "127.0.0.2", secret2); ok {
		t.Fatalf("127.0.0.2 answered before it was configured:\n%s", out)
	}
	client2 := fmt.Sprintf("[[client]]\nname = \"second\"\naddress = \"127.0.0.2\"\nsecret = %q\n", secret2)
	if !d.Reload(client2) {
		t.Fatalf("reload failed:\n%s", d.Output())
	}
	if !strings.Contains(d.Output(), `client \"second\" added (127.0.0.2, mode auto)`) {
		t.Errorf("reload did not log the added client:\n%s", d.Output())
	}
	if ok, out := statusFrom(t, d, "127.0.0.2", secret2); !ok {
		t.Fatalf("127.0.0.2 not answered after SIGHUP added it:\n%s", out)
	}

	// A broken config is refused and the running one stays.
	if d.Reload(client2 + "bogus_key = 1\n") {
		t.Fatal("a config with an unknown key was applied")
	}
	if !strings.Contains(d.Output(), `unknown key \"client[1].bogus_key\"`) {
		t.Errorf("the failed reload does not name the bad key:\n%s", d.Output())
	}
	if ok, out := statusFrom(t, d, "127.0.0.2", secret2); !ok {
		t.Fatalf("a failed reload dropped the running config:\n%s", out)
	}

	// Removing the client again takes effect too.
	if !d.Reload("") {
		t.Fatal("reload back failed")
	}
	if ok, out := statusFrom(t, d, "127.0.0.2", secret2); ok {
		t.Fatalf("127.0.0.2 still answered after its removal:\n%s", out)
	}
	if strings.Contains(d.Output(), secret2) || strings.Contains(d.Output(), d.Secret) {
		t.Error("a shared secret appears in the daemon output")
	}
}

// getMetricsPath GETs path from d's metrics listener.
func getMetricsPath(t *testing.T, d *Daemon, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.Metrics + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue reads one unlabelled metric from d's /metrics.
func metricValue(t *testing.T, d *Daemon, name string) float64 {
	t.Helper()
	_, b := getMetricsPath(t, d, "/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics:\n%s", name, b)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func TestDaemonMetrics(t *testing.T) {
	d := startDaemon(t, "", "")
	if host, _, _ := net.SplitHostPort(d.Metrics); !net.ParseIP(host).IsLoopback() {
		t.Fatalf("metrics on %s, want loopback", d.Metrics)
	}
	code, body := getMetricsPath(t, d, "/metrics")
	if code != 200 || !strings.Contains(body, "# TYPE otpgate_radius_requests_total counter") {
		t.Errorf("GET /metrics = %d:\n%s", code, body)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^otpgate_store_log_appends_total 0$`),
		regexp.MustCompile(`(?m)^otpgate_store_checkpoint_failures_total 0$`),
		regexp.MustCompile(`(?m)^otpgate_store_fence_moves_total \d+$`),
	} {
		if !want.MatchString(body) {
			t.Errorf("GET /metrics has no line matching %s:\n%s", want, body)
		}
	}
	if code, _ := getMetricsPath(t, d, "/"); code != 404 {
		t.Errorf("GET / = %d, want 404 (only /metrics is served)", code)
	}
}
