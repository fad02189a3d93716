package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/bench/loadgen"
	"github.com/otpgate/otpgate/totp"
	"layeh.com/radius"
)

// acceptedCode is one Access-Accept the load generator verified.
type acceptedCode struct {
	user, code string
	step       uint64
}

// TestDurabilityKill9 runs load against otpgated, kills it with SIGKILL
// while requests are in flight, restarts it on the same database and
// replays every (user, code) pair that got an Access-Accept before the kill:
// each must now be rejected, because the time step was stored durably
// before the Accept was sent (RFC 6238 §5.2). A control group of users that
// were not used proves the restarted server does accept fresh codes in the
// same window, so the rejections come from replay protection and not from
// expired codes.
func TestDurabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const nUsers = 6000
	d := startDaemon(t, "", "[auth]\nmode = \"otp-only\"\nmfa = \"required\"\n")
	csvPath := filepath.Join(t.TempDir(), "users.csv")
	var csvBuf bytes.Buffer
	if _, err := loadgen.GenerateUsers(&csvBuf, nUsers, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csvPath, csvBuf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &cliEnv{t: t, dir: d.Dir, config: d.Config}
	e.mustOtpgate("", "import", csvPath, "--format", "csv")
	users, err := loadgen.ReadUsers(bytes.NewReader(csvBuf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// The last 100 users are the control group: never sent before the kill.
	load, control := users[:nUsers-100], users[nUsers-100:]

	// Start at the beginning of a time step, so that load, restart and
	// replay all fall inside the window (skew 1) of the accepted codes.
	if left := time.Until(totp.Default.StepStart(totp.Default.Step(time.Now()) + 1)); left < 20*time.Second {
		t.Logf("waiting %v for a fresh time step", left.Round(time.Millisecond))
		time.Sleep(left + 50*time.Millisecond)
	}

	var mu sync.Mutex
	var accepted []acceptedCode
	resCh := make(chan *loadgen.Result, 1)
	go func() {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			Server: d.Addr, Secret: []byte(d.Secret), Users: load, Concurrency: 16,
			Duration: 4 * time.Second, Mode: loadgen.ModeOTPOnly, Timeout: 300 * time.Millisecond,
			OnAccept: func(user, code string, step uint64) {
				mu.Lock()
				accepted = append(accepted, acceptedCode{user, code, step})
				mu.Unlock()
			},
		})
		if err != nil {
			t.Error(err)
		}
		resCh <- res
	}()
	// Kill once a good number of Accepts came back, with load still running.
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 1000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-d.exited
	mu.Lock()
	atKill := len(accepted)
	mu.Unlock()
	res := <-resCh
	if res == nil {
		t.Fatal("load run failed")
	}
	mu.Lock()
	pairs := append([]acceptedCode(nil), accepted...)
	mu.Unlock()
	t.Logf("before the kill: %d accepts verified (%d at the kill, %d answered just after it), %d timeouts after the kill, %d logins",
		len(pairs), atKill, len(pairs)-atKill, res.Timeout, res.Logins)
	if len(pairs) < 100 {
		t.Fatalf("only %d accepts before the kill; the test needs load to be running when the daemon dies", len(pairs))
	}
	if res.Timeout == 0 {
		t.Fatal("no request timed out after the kill: the daemon was not killed during load")
	}

	restart := time.Now()
	d2 := startDaemon(t, d.Dir, "[auth]\nmode = \"otp-only\"\nmfa = \"required\"\n")
	t.Logf("restart on the same database took %v", time.Since(restart).Round(time.Millisecond))

	c, err := loadgen.NewClient(d2.Addr, []byte(d2.Secret), 2*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	replayStep := totp.Default.Step(time.Now())
	inWindow, replayed := 0, 0
	for _, p := range pairs {
		resp, err := c.Authenticate(ctx, p.user, p.code, nil)
		if err != nil {
			t.Fatalf("replay %s: %v", p.user, err)
		}
		if resp.Code != radius.CodeAccessReject {
			if replayed++; replayed <= 10 {
				t.Errorf("REPLAY ACCEPTED: user %s, code of step %d, accepted before the kill, got %v after the restart", p.user, p.step, resp.Code)
			}
		}
		if p.step+1 >= replayStep {
			inWindow++
		}
	}
	if replayed > 0 {
		t.Fatalf("%d of %d codes accepted before kill -9 were accepted again after the restart", replayed, len(pairs))
	}
	// Control: fresh codes of unused users are accepted right now, so the
	// rejections above are replay protection, not expired codes.
	for _, u := range control[:20] {
		code := totp.Default.Code(u.Key, totp.Default.Step(time.Now()))
		resp, err := c.Authenticate(ctx, u.Name, code, nil)
		if err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("control user %s with a fresh code: %v %v; want Access-Accept", u.Name, resp.Code, err)
		}
	}
	if endStep := totp.Default.Step(time.Now()); inWindow < len(pairs)/2 {
		t.Fatalf("only %d of %d replays were sent while their codes were still inside the skew window (steps %d..%d); "+
			"the machine is too slow for this test to prove anything", inWindow, len(pairs), replayStep, endStep)
	}
	if reused := strings.Count(d2.Output(), `reason=code_reused`) + strings.Count(d2.Output(), `"reason":"code_reused"`); reused < inWindow {
		t.Errorf("audit log has %d code_reused rejections, want at least %d (the in-window replays)", reused, inWindow)
	}
	t.Logf("replayed %d accepted codes after kill -9 and restart (%d inside their skew window): all rejected; %s",
		len(pairs), inWindow, fmt.Sprintf("%d control logins accepted", 20))
}
