package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

type fixture struct {
	local *admin.Local
	st    *store.DB
	srv   *Server
	ts    *httptest.Server
}

func newFixture(t *testing.T, users ...string) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	local := admin.NewLocal(st, password.Params{Time: 1, MemKiB: 1024, Threads: 1}, "ACME VPN")
	for _, u := range users {
		if err := local.AddUser(context.Background(), admin.NewUser{Name: u}); err != nil {
			t.Fatal(err)
		}
	}
	srv := New(local, Options{})
	srv.global = newBucket(1000, 1000, time.Now)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{local: local, st: st, srv: srv, ts: ts}
}

func (f *fixture) link(t *testing.T, name string, ttl time.Duration) string {
	t.Helper()
	l, err := IssueLink(context.Background(), f.local, f.ts.URL+"/", name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.URL, f.ts.URL+"/enroll/") {
		t.Fatalf("link URL %q", l.URL)
	}
	return l.URL
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, u, code string) (*http.Response, string) {
	t.Helper()
	resp, err := http.PostForm(u, url.Values{"code": {code}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var keyRe = regexp.MustCompile(`id="key">([A-Z2-7 ]+)<`)

func pageSecret(t *testing.T, body string) []byte {
	t.Helper()
	m := keyRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no key on the page:\n%s", body)
	}
	s, err := enroll.DecodeSecret(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func codeNow(t *testing.T, secret []byte) string {
	c, err := totp.Default.CodeAt(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wrongCode(t *testing.T, secret []byte, n int) string {
	for i := n; ; i++ {
		c := strings.Repeat(string(rune('0'+i%10)), 6)
		if _, ok, _ := totp.Default.Match(secret, c, time.Now(), 1); !ok {
			return c
		}
	}
}

func checkHeaders(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	h := resp.Header
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
		"X-Content-Type-Options": "nosniff",
		"Content-Type":           "text/html; charset=utf-8",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	c := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(c, want) {
			t.Errorf("CSP %q lacks %q", c, want)
		}
	}
	// The inline stylesheet is the one the CSP hash allows.
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no <style>")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(c, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
		t.Errorf("CSP %q does not allow the page's stylesheet", c)
	}
	if strings.Contains(strings.ToLower(body), "<script") || regexp.MustCompile(`(?i)(src|href)="https?:`).MatchString(body) {
		t.Error("page has a script or an external asset")
	}
}

func TestEnrollThroughLink(t *testing.T) {
	f := newFixture(t, "alice")
	u := f.link(t, "alice", time.Hour)
	resp, body := get(t, u)
	if resp.StatusCode != 200 {
		t.Fatalf("GET = %d\n%s", resp.StatusCode, body)
	}
	checkHeaders(t, resp, body)
	for _, want := range []string{"alice", "ACME VPN", `src="data:image/png;base64,`, `href="otpauth://totp/`, `name="code"`, "I can't scan the code"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(body), `type="password"`) {
		t.Error("the page asks for a password")
	}
	secret := pageSecret(t, body)
	// A reload shows the same secret.
	if _, again := get(t, u); string(pageSecret(t, again)) != string(secret) {
		t.Fatal("reload shows another secret")
	}
	resp, body = post(t, u, wrongCode(t, secret, 1))
	if resp.StatusCode != 422 || !strings.Contains(body, "not right") || !strings.Contains(body, "4 more tries") {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, body)
	}
	f.srv.lastCode = map[[32]byte]time.Time{} // skip the per-link pause
	resp, body = post(t, u, codeNow(t, secret))
	if resp.StatusCode != 200 || !strings.Contains(body, "Two-factor login is active") {
		t.Fatalf("right code: %d\n%s", resp.StatusCode, body)
	}
	checkHeaders(t, resp, body)
	if n := strings.Count(body, "<li>"); n != admin.RecoveryCodeCount {
		t.Errorf("%d recovery codes shown", n)
	}
	if u, _ := f.st.Get(context.Background(), "alice"); u.TOTP == nil {
		t.Fatal("token not active")
	}
	// The link is dead now: the uniform page.
	resp, used := get(t, u)
	_, unknown := get(t, f.ts.URL+"/enroll/AAAAAAAAAAAAAAAAAAAAAA")
	if resp.StatusCode != 404 || used != unknown || !strings.Contains(used, "This link does not work") {
		t.Fatalf("used link: %d, same page as an unknown one: %v\n%s", resp.StatusCode, used == unknown, used)
	}
	f.srv.lastCode = map[[32]byte]time.Time{}
	if resp, again := post(t, u, codeNow(t, secret)); resp.StatusCode != 404 || again != unknown {
		t.Fatalf("POST on a used link: %d", resp.StatusCode)
	}
}

func TestDeadLinksLookAlike(t *testing.T) {
	f := newFixture(t, "alice", "bob", "carol")
	_, unknown := get(t, f.ts.URL+"/enroll/"+strings.Repeat("x", 22))
	pages := map[string]string{}

	// Expired: its expiry moved into the past.
	expired := f.link(t, "alice", time.Hour)
	token := expired[strings.LastIndex(expired, "/")+1:]
	err := f.st.UpdateEnrollLink(context.Background(), admin.HashLinkToken(token), func(l *store.EnrollLink) (bool, error) {
		l.Expires = time.Now().Add(-time.Second)
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, pages["expired"] = get(t, expired)

	// Killed by five wrong codes.
	killed := f.link(t, "bob", time.Hour)
	_, body := get(t, killed)
	secret := pageSecret(t, body)
	var last string
	for i := 1; i <= admin.MaxLinkAttempts; i++ {
		f.srv.lastCode = map[[32]byte]time.Time{}
		_, last = post(t, killed, wrongCode(t, secret, i))
	}
	pages["killed (last wrong code)"] = last
	_, pages["killed"] = get(t, killed)

	// Deleted user, replaced link, overlong token, other paths.
	gone := f.link(t, "carol", time.Hour)
	if err := f.local.DeleteUser(context.Background(), "carol"); err != nil {
		t.Fatal(err)
	}
	_, pages["deleted user"] = get(t, gone)
	_, pages["long token"] = get(t, f.ts.URL+"/enroll/"+strings.Repeat("A", 200))
	_, pages["root"] = get(t, f.ts.URL+"/")
	for name, p := range pages {
		if p != unknown {
			t.Errorf("%s: page differs from an unknown link's:\n%s", name, html.UnescapeString(p))
		}
	}
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, "alice")
	u := f.link(t, "alice", time.Hour)
	_, body := get(t, u)
	secret := pageSecret(t, body)
	if resp, _ := post(t, u, wrongCode(t, secret, 1)); resp.StatusCode != 422 {
		t.Fatalf("first code: %d", resp.StatusCode)
	}
	if resp, body := post(t, u, wrongCode(t, secret, 2)); resp.StatusCode != 429 || !strings.Contains(body, "Too many attempts") {
		t.Fatalf("second code at once: %d", resp.StatusCode)
	}
	f.srv.global = newBucket(0, 2, time.Now)
	get(t, u)
	get(t, u)
	if resp, _ := get(t, u); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the global limit: %d", resp.StatusCode)
	}
}
