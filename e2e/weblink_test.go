package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/control"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
)

// artifactsEnv names the directory the browser test writes its
// screenshots to (default: a t.TempDir(), logged).
const artifactsEnv = "OTPGATE_E2E_ARTIFACTS"

func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s (%s names a directory to keep them in)", dir, artifactsEnv)
	return dir
}

// browser starts Debian's chromium, headless, with a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := requireTool(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser for ctx's lifetime
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return tctx
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func issueLink(t *testing.T, d *Daemon, name string, extra ...string) string {
	t.Helper()
	args := append([]string{"-config", d.Config, "enroll", name, "--link", "--json"}, extra...)
	out, err := exec.Command(bin("otpgate"), args...).Output()
	if err != nil {
		t.Fatalf("otpgate enroll %s --link: %v", name, err)
	}
	var l struct{ User, URL string }
	if err := json.Unmarshal(out, &l); err != nil || l.User != name {
		t.Fatalf("link JSON %q: %v", out, err)
	}
	return l.URL
}

// TestEnrollLinkInBrowser: headless Chromium opens a one-time link, the
// QR code is taken off the page and decoded with zbarimg, oathtool's code
// is typed and submitted, and the recovery codes show; the same link
// again, and an expired one, get the "does not work" page. Screenshots of
// every page (laptop and phone sizes) go to $OTPGATE_E2E_ARTIFACTS.
func TestEnrollLinkInBrowser(t *testing.T) {
	requireTool(t, "zbarimg")
	requireTool(t, "oathtool")
	shots := artifactDir(t)
	port := testtool.FreePort(t, "tcp")
	web := fmt.Sprintf("[web]\nlisten = \"127.0.0.1:%d\"\npublic_url = \"http://127.0.0.1:%d\"\n", port, port)
	dir := t.TempDir()
	d := startDaemon(t, dir, web)
	for _, n := range []string{"alice", "bob"} {
		if out, err := exec.Command(bin("otpgate"), "-config", d.Config, "user", "add", n, "--no-password").CombinedOutput(); err != nil {
			t.Fatalf("user add %s: %v\n%s", n, err, out)
		}
	}
	link := issueLink(t, d, "alice", "--expires", "2h")
	expired := issueLink(t, d, "bob", "--expires", "1m")
	if !strings.HasPrefix(link, fmt.Sprintf("http://127.0.0.1:%d/enroll/", port)) {
		t.Fatalf("link %q", link)
	}

	// Expire bob's link: stop the daemon, move the expiry into the past
	// in the store, start it again.
	d.Stop()
	st, err := store.Open(filepath.Join(dir, "data", "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	token := expired[strings.LastIndex(expired, "/")+1:]
	err = st.UpdateEnrollLink(context.Background(), admin.HashLinkToken(token), func(l *store.EnrollLink) (bool, error) {
		l.Expires = time.Now().Add(-time.Minute)
		return false, nil
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, dir, web)

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("code"))); err != nil {
		t.Fatalf("open the link: %v", err)
	}
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("qr"), "src"))
	if err != nil || !src.Exists {
		t.Fatalf("QR image: %v (src found: %v)", err, src.Exists)
	}
	qrSrc := src.Value
	screenshot(t, ctx, shots, "1-enroll-laptop")
	// The same page on a phone, with the key shown.
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Click(chromedp.CSS("summary")),
		chromedp.WaitVisible(chromedp.ID("key")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, shots, "2-enroll-phone-key")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}

	b64, found := strings.CutPrefix(qrSrc, "data:image/png;base64,")
	if !found {
		t.Fatalf("QR image src %.40q is not a data: PNG", qrSrc)
	}
	png, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	qrPath := filepath.Join(t.TempDir(), "page-qr.png")
	if err := os.WriteFile(qrPath, png, 0o600); err != nil {
		t.Fatal(err)
	}
	uri := zbarimg(t, qrPath)
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Path != "/otpgate-e2e:alice" || u.Query().Get("issuer") != "otpgate-e2e" {
		t.Fatalf("QR code holds %q", uri)
	}

	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("code"), oathtoolCode(t, u.Query().Get("secret"))),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("codes")),
	)
	if err != nil {
		t.Fatalf("submit the code: %v", err)
	}
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#codes li")).map(li => li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, shots, "3-recovery-codes")
	if len(codes) != 10 || !strings.Contains(body, "Two-factor login is active") {
		t.Fatalf("recovery page: %d codes\n%s", len(codes), body)
	}
	svc := adminService(t, d)
	if info, err := svc.ShowUser(context.Background(), "alice"); err != nil || !info.Enrolled {
		t.Fatalf("alice after the page: %+v, %v", info, err)
	}

	for i, c := range []struct{ name, url string }{{"4-used-link", link}, {"5-expired-link", expired}} {
		err := chromedp.Do(ctx, chromedp.Navigate(c.url), chromedp.WaitVisible(chromedp.CSS("h1")))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		screenshot(t, ctx, shots, c.name)
		if !strings.Contains(text, "This link does not work") || strings.Contains(text, "alice") || strings.Contains(text, "bob") {
			t.Errorf("case %d %s: page says\n%s", i, c.name, text)
		}
	}
	if info, err := svc.ShowUser(context.Background(), "bob"); err != nil || info.Enrolled || info.PendingEnroll {
		t.Fatalf("the expired link touched bob: %+v, %v", info, err)
	}
}

// adminService dials d's control socket.
func adminService(t *testing.T, d *Daemon) admin.Service {
	t.Helper()
	svc, err := control.Dial(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}
