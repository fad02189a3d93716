package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// fakeService records calls and returns canned results; err, when set, is
// returned by every method.
type fakeService struct {
	mu     sync.Mutex
	calls  []string
	err    error
	backup []byte
	// backupErr fails Backup after writing backup.
	backupErr error
}

func (f *fakeService) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

func (f *fakeService) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeService) AddUser(_ context.Context, u admin.NewUser) error {
	return f.record("AddUser %s %v %s", u.Name, u.Groups, u.Password)
}
func (f *fakeService) SetPassword(_ context.Context, name, pw string) error {
	return f.record("SetPassword %s %s", name, pw)
}
func (f *fakeService) ListUsers(context.Context) ([]admin.UserInfo, error) {
	if err := f.record("ListUsers"); err != nil {
		return nil, err
	}
	return []admin.UserInfo{{Name: "alice", Groups: []string{"vpn"}, Enrolled: true, RecoveryLeft: 9,
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, {Name: "bob"}}, nil
}
func (f *fakeService) ShowUser(_ context.Context, name string) (admin.UserInfo, error) {
	if err := f.record("ShowUser %s", name); err != nil {
		return admin.UserInfo{}, err
	}
	return admin.UserInfo{Name: name, CodeFailures: 3, LockedUntil: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}, nil
}
func (f *fakeService) SetDisabled(_ context.Context, name string, d bool) error {
	return f.record("SetDisabled %s %v", name, d)
}
func (f *fakeService) DeleteUser(_ context.Context, name string) error {
	return f.record("DeleteUser %s", name)
}
func (f *fakeService) Unlock(_ context.Context, name string) error {
	return f.record("Unlock %s", name)
}
func (f *fakeService) SetGroups(_ context.Context, name string, g []string) error {
	return f.record("SetGroups %s %q", name, g)
}
func (f *fakeService) BeginEnroll(_ context.Context, name string, force bool) ([]byte, error) {
	if err := f.record("BeginEnroll %s %v", name, force); err != nil {
		return nil, err
	}
	return []byte{0, 1, 0xfe, 0xff, '"', '\n'}, nil
}
func (f *fakeService) ActivateTOTP(_ context.Context, name string, code string, force bool) ([]string, error) {
	if err := f.record("ActivateTOTP %s %s %v", name, code, force); err != nil {
		return nil, err
	}
	return []string{"aaaa-bbbb-cccc-dddd", "eeee-ffff-gggg-hhhh"}, nil
}
func (f *fakeService) ResetMFA(_ context.Context, name string) error {
	return f.record("ResetMFA %s", name)
}
func (f *fakeService) NewRecoveryCodes(_ context.Context, name string) ([]string, error) {
	if err := f.record("NewRecoveryCodes %s", name); err != nil {
		return nil, err
	}
	return []string{"2222-3333-4444-5555"}, nil
}
func (f *fakeService) Import(_ context.Context, users []admin.ImportUser) (int, error) {
	var names []string
	for _, u := range users {
		names = append(names, fmt.Sprintf("%s:%x:%v", u.Name, u.Secret, u.RecoveryCodes))
	}
	if err := f.record("Import %v", names); err != nil {
		return 0, err
	}
	return len(users), nil
}
func (f *fakeService) Backup(_ context.Context, w io.Writer) (int64, error) {
	if err := f.record("Backup"); err != nil {
		return 0, err
	}
	n, err := w.Write(f.backup)
	if err != nil {
		return int64(n), err
	}
	return int64(n), f.backupErr
}

func (f *fakeService) IssueEnrollLink(_ context.Context, name string, ttl time.Duration) (admin.EnrollLink, error) {
	if err := f.record("IssueEnrollLink %s %s", name, ttl); err != nil {
		return admin.EnrollLink{}, err
	}
	return admin.EnrollLink{User: name, Token: "token", Expires: time.Unix(0, 0).Add(ttl)}, nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestGuard(t *testing.T) {
	self := uint32(os.Geteuid())
	other := uint32(54321)
	if self == other {
		t.Skip("test uid collides with euid")
	}
	tests := []struct {
		name       string
		peer       *unix.Ucred // nil: no credentials in the context
		group      bool        // server allows gid 54321
		method     string
		path       string
		headers    map[string]string
		host       string
		wantStatus int
	}{
		{"root", &unix.Ucred{Uid: 0}, false, "GET", "/v1/status", nil, Host, 200},
		{"daemon user", &unix.Ucred{Uid: self, Gid: 1}, false, "GET", "/v1/users", nil, Host, 200},
		{"other user", &unix.Ucred{Uid: other, Gid: other}, false, "GET", "/v1/status", nil, Host, 403},
		{"other user in admin group", &unix.Ucred{Uid: other, Gid: other}, true, "GET", "/v1/status", nil, Host, 200},
		{"other user not in admin group", &unix.Ucred{Uid: other, Gid: 1}, true, "GET", "/v1/status", nil, Host, 403},
		{"no credentials", nil, false, "GET", "/v1/status", nil, Host, 403},
		{"origin", &unix.Ucred{Uid: 0}, false, "GET", "/v1/status", map[string]string{"Origin": "http://evil.example"}, Host, 403},
		{"referer", &unix.Ucred{Uid: 0}, false, "POST", "/v1/users/bob/unlock", map[string]string{"Referer": "http://evil.example/"}, Host, 403},
		{"wrong host", &unix.Ucred{Uid: 0}, false, "GET", "/v1/status", nil, "localhost", 403},
		{"empty host", &unix.Ucred{Uid: 0}, false, "GET", "/v1/status", nil, "", 403},
		{"unknown path", &unix.Ucred{Uid: 0}, false, "GET", "/v1/nope", nil, Host, 404},
		{"wrong method", &unix.Ucred{Uid: 0}, false, "POST", "/v1/status", nil, Host, 405},
		{"wrong method on user", &unix.Ucred{Uid: 0}, false, "PATCH", "/v1/users/bob", nil, Host, 405},
		{"denied before routing", &unix.Ucred{Uid: other}, false, "DELETE", "/v1/users/bob", nil, Host, 403},
		{"delete user", &unix.Ucred{Uid: 0}, false, "DELETE", "/v1/users/bob", nil, Host, 204},
		{"bad body", &unix.Ucred{Uid: 0}, false, "POST", "/v1/users", nil, Host, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{}
			s := NewServer(svc, ServerOptions{}, testLogger(t))
			if tt.group {
				base := s.allow
				s.allow = func(p unix.Ucred) bool { return base(p) || p.Gid == other }
			}
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader("{not json")
			}
			req := httptest.NewRequest(tt.method, "http://x"+tt.path, body)
			req.Host = tt.host
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if tt.peer != nil {
				req = req.WithContext(withPeer(req.Context(), *tt.peer))
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.wantStatus)
			}
			if rec.Code == 403 && len(svc.calls) > 0 {
				t.Errorf("service called despite 403: %v", svc.calls)
			}
			if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"error":`) {
				t.Errorf("error body is not JSON {\"error\": ...}: %s", rec.Body)
			}
		})
	}
}

func TestGroupMembershipAllows(t *testing.T) {
	// Group "root" (gid 0) exists everywhere; a peer whose primary gid is 0
	// is a member even with an unknown uid.
	s := NewServer(&fakeService{}, ServerOptions{Group: "root"}, nil)
	if !s.allow(unix.Ucred{Uid: 54321, Gid: 0}) {
		t.Error("peer with primary gid of the admin group refused")
	}
	if os.Geteuid() != 54321 && s.allow(unix.Ucred{Uid: 54321, Gid: 54321}) {
		t.Error("unknown peer outside the admin group allowed")
	}
}

// startServer serves svc on a socket in a temp dir and returns its path.
func startServer(t *testing.T, svc admin.Service) (string, *Server) {
	t.Helper()
	return startServerWith(t, svc, serverSetup{})
}

// serverSetup adjusts a test server before it serves.
type serverSetup struct {
	opt   ServerOptions                   // Version defaults to "test"
	log   *slog.Logger                    // nil: testLogger
	allow func(unix.Ucred) bool           // replaces the peer check when set
	wrap  func(net.Listener) net.Listener // wraps the socket's listener when set
}

func startServerWith(t *testing.T, svc admin.Service, setup serverSetup) (string, *Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "control.sock")
	if setup.opt.Version == "" {
		setup.opt.Version = "test"
	}
	if setup.log == nil {
		setup.log = testLogger(t)
	}
	s := NewServer(svc, setup.opt, setup.log)
	if setup.allow != nil {
		s.allow = setup.allow
	}
	ln, err := s.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if setup.wrap != nil {
		ln = setup.wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket %s still there after shutdown (%v)", path, err)
		}
	})
	return path, s
}

func TestRoundTrip(t *testing.T) {
	svc := &fakeService{backup: bytes.Repeat([]byte("bolt"), 100000)}
	path, _ := startServer(t, svc)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want a socket with 0600", fi.Mode())
	}
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(what string, err error, wantCall string) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if got := svc.lastCall(); got != wantCall {
			t.Errorf("%s: service saw %q, want %q", what, got, wantCall)
		}
	}
	check("AddUser", c.AddUser(ctx, admin.NewUser{Name: "alice", Groups: []string{"vpn", "ops"}, Password: "pw 1"}), "AddUser alice [vpn ops] pw 1")
	check("SetPassword", c.SetPassword(ctx, "alice", "new pw"), "SetPassword alice new pw")
	users, err := c.ListUsers(ctx)
	check("ListUsers", err, "ListUsers")
	want, _ := svc.ListUsers(ctx)
	if !reflect.DeepEqual(users, want) {
		t.Errorf("ListUsers = %+v, want %+v", users, want)
	}
	u, err := c.ShowUser(ctx, "bob")
	check("ShowUser", err, "ShowUser bob")
	if u.Name != "bob" || u.CodeFailures != 3 || !u.LockedUntil.Equal(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)) {
		t.Errorf("ShowUser = %+v", u)
	}
	_, err = c.ShowUser(ctx, "a/b c")
	check("ShowUser escaped", err, "ShowUser a/b c")
	check("SetDisabled", c.SetDisabled(ctx, "bob", true), "SetDisabled bob true")
	check("DeleteUser", c.DeleteUser(ctx, "bob"), "DeleteUser bob")
	check("Unlock", c.Unlock(ctx, "bob"), "Unlock bob")
	check("SetGroups", c.SetGroups(ctx, "bob", []string{"a", "b"}), `SetGroups bob ["a" "b"]`)
	check("SetGroups none", c.SetGroups(ctx, "bob", nil), `SetGroups bob []`)
	secret, err := c.BeginEnroll(ctx, "bob", true)
	check("BeginEnroll", err, "BeginEnroll bob true")
	if !bytes.Equal(secret, []byte{0, 1, 0xfe, 0xff, '"', '\n'}) {
		t.Errorf("BeginEnroll secret = %x", secret)
	}
	_, err = c.BeginEnroll(ctx, "carol", false)
	check("BeginEnroll without force", err, "BeginEnroll carol false")
	codes, err := c.ActivateTOTP(ctx, "bob", "012345", true)
	check("ActivateTOTP", err, "ActivateTOTP bob 012345 true")
	if len(codes) != 2 || codes[0] != "aaaa-bbbb-cccc-dddd" {
		t.Errorf("ActivateTOTP codes = %q", codes)
	}
	_, err = c.ActivateTOTP(ctx, "bob", "", false)
	check("ActivateTOTP empty code", err, "ActivateTOTP bob  false")
	check("ResetMFA", c.ResetMFA(ctx, "bob"), "ResetMFA bob")
	codes, err = c.NewRecoveryCodes(ctx, "bob")
	check("NewRecoveryCodes", err, "NewRecoveryCodes bob")
	if len(codes) != 1 || codes[0] != "2222-3333-4444-5555" {
		t.Errorf("NewRecoveryCodes = %q", codes)
	}
	n, err := c.Import(ctx, []admin.ImportUser{{Name: "x", Secret: []byte{1, 2}, RecoveryCodes: []string{"r1"}}, {Name: "y"}})
	check("Import", err, "Import [x:0102:[r1] y::[]]")
	if n != 2 {
		t.Errorf("Import = %d, want 2", n)
	}
	var buf bytes.Buffer
	bn, err := c.Backup(ctx, &buf)
	check("Backup", err, "Backup")
	if bn != int64(len(svc.backup)) || !bytes.Equal(buf.Bytes(), svc.backup) {
		t.Errorf("Backup = %d bytes (buffer %d), want %d", bn, buf.Len(), len(svc.backup))
	}
	if st, err := c.(*Client).Status(ctx); err != nil || st.Version != "test" || st.PID != os.Getpid() {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

func TestErrorMapping(t *testing.T) {
	svc := &fakeService{}
	path, _ := startServer(t, svc)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, we := range wireErrors {
		t.Run(we.code, func(t *testing.T) {
			svc.err = fmt.Errorf("admin: show %q: %w", "bob", we.err)
			_, err := c.ShowUser(ctx, "bob")
			if !errors.Is(err, we.err) {
				t.Errorf("ShowUser error %v does not wrap %v after the round trip", err, we.err)
			}
			if want := svc.err.Error(); err == nil || err.Error() != want {
				t.Errorf("error text = %v, want %q", err, want)
			}
			// every method carries the error, not just ShowUser
			if err := c.Unlock(ctx, "bob"); !errors.Is(err, we.err) {
				t.Errorf("Unlock error %v does not wrap %v", err, we.err)
			}
			if _, err := c.BeginEnroll(ctx, "bob", false); !errors.Is(err, we.err) {
				t.Errorf("BeginEnroll error %v does not wrap %v", err, we.err)
			}
			if _, err := c.ActivateTOTP(ctx, "bob", "123456", false); !errors.Is(err, we.err) {
				t.Errorf("ActivateTOTP error %v does not wrap %v", err, we.err)
			}
			if _, err := c.Backup(ctx, io.Discard); !errors.Is(err, we.err) {
				t.Errorf("Backup error %v does not wrap %v", err, we.err)
			}
		})
	}
	svc.err = errors.New("disk on fire")
	err = c.DeleteUser(ctx, "bob")
	if err == nil || err.Error() != "disk on fire" || errors.Is(err, store.ErrUserNotFound) {
		t.Errorf("plain error = %v", err)
	}
}

func TestBackupErrorAfterStreaming(t *testing.T) {
	svc := &fakeService{backup: []byte("partial"), backupErr: fmt.Errorf("backup: %w", store.ErrLocked)}
	path, _ := startServer(t, svc)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := c.Backup(context.Background(), &buf)
	if !errors.Is(err, store.ErrLocked) || n != 7 {
		t.Errorf("Backup = %d, %v; want 7 bytes and an error wrapping ErrLocked", n, err)
	}
}

func TestDialNotRunning(t *testing.T) {
	dir := t.TempDir()
	// missing socket
	start := time.Now()
	if _, err := Dial(filepath.Join(dir, "missing.sock")); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Dial(missing) = %v, want ErrNotRunning", err)
	}
	// stale socket: the file exists, nothing listens
	stale := makeStaleSocket(t, dir)
	if _, err := Dial(stale); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Dial(stale) = %v, want ErrNotRunning", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Dial took %v to find no daemon, want < 1s", d)
	}
}

func TestDialHungDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hung.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and never answer
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = Dial(path)
	if err == nil || errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("Dial(hung) = %v, want a did-not-answer error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial(hung) took %v", d)
	}
}

func TestDialAccessDenied(t *testing.T) {
	svc := &fakeService{}
	path, _ := startServerWith(t, svc, serverSetup{allow: func(unix.Ucred) bool { return false }})
	_, err := Dial(path)
	if !errors.Is(err, ErrAccessDenied) {
		t.Errorf("Dial as a refused peer = %v, want ErrAccessDenied", err)
	}
}

func makeStaleSocket(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file not left behind: %v", err)
	}
	return path
}

func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := makeStaleSocket(t, dir)
	s := NewServer(&fakeService{}, ServerOptions{}, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := s.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	for i := 0; i < 100; i++ {
		if _, err = Dial(path); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("daemon never answered on the replaced socket: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeListener: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".otpgated-*")); len(left) > 0 {
		t.Errorf("temporary socket names left: %v", left)
	}
}

func TestLiveSocketNotStolen(t *testing.T) {
	svc := &fakeService{}
	path, _ := startServer(t, svc)
	s2 := NewServer(&fakeService{}, ServerOptions{}, testLogger(t))
	_, err := s2.Listen(path)
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen = %v, want ErrAlreadyRunning", err)
	}
	c, err := Dial(path)
	if err != nil {
		t.Fatalf("first daemon lost its socket: %v", err)
	}
	if err := c.Unlock(context.Background(), "x"); err != nil || svc.lastCall() != "Unlock x" {
		t.Errorf("first daemon no longer serves: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewServer(&fakeService{}, ServerOptions{}, nil).Listen(path)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file = %v, want a not-a-socket error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("regular file was replaced")
	}
}

func TestListenWithGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chgrp to another group needs root")
	}
	path := filepath.Join(t.TempDir(), "sub", "control.sock")
	ln, err := NewServer(&fakeService{}, ServerOptions{Group: "daemon"}, nil).Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode = %v, want 0660", fi.Mode().Perm())
	}
	g, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Gid) != g.Gid {
		t.Errorf("socket gid = %d, want %s (daemon)", st.Gid, g.Gid)
	}
	dfi, _ := os.Stat(filepath.Dir(path))
	if dfi.Mode().Perm() != 0o700 {
		t.Errorf("created socket dir mode = %v, want 0700", dfi.Mode().Perm())
	}
}

func TestRealPeerCredentials(t *testing.T) {
	// Over a real socket the context carries this process's credentials.
	svc := &fakeService{}
	var mu sync.Mutex
	var got unix.Ucred
	path, _ := startServerWith(t, svc, serverSetup{allow: func(p unix.Ucred) bool {
		mu.Lock()
		defer mu.Unlock()
		got = p
		return true
	}})
	if _, err := Dial(path); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Uid != uint32(os.Geteuid()) || got.Pid != int32(os.Getpid()) {
		t.Errorf("peer = %+v, want uid %d pid %d", got, os.Geteuid(), os.Getpid())
	}
	_ = http.StatusOK
}

// TestEnrollThroughSocket runs both enrollment steps against a real
// admin.Local on a real store behind the socket: the secret crosses intact,
// and every enrollment sentinel keeps errors.Is on the client side.
func TestEnrollThroughSocket(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	local := admin.NewLocal(st, password.Params{Time: 1, MemKiB: 1024, Threads: 1}, "Test VPN")
	path, _ := startServer(t, local)
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddUser(ctx, admin.NewUser{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ActivateTOTP(ctx, "bob", "123456", false); !errors.Is(err, admin.ErrNoPendingEnroll) {
		t.Fatalf("activate without begin: %v, want ErrNoPendingEnroll", err)
	}
	secret, err := c.BeginEnroll(ctx, "bob", false)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Get(ctx, "bob"); u.PendingTOTP == nil || !bytes.Equal(u.PendingTOTP.Secret, secret) {
		t.Fatal("the secret the client got is not the pending one stored")
	}
	if info, err := c.ShowUser(ctx, "bob"); err != nil || !info.PendingEnroll || info.Enrolled {
		t.Fatalf("ShowUser = %+v, %v; want pending, not enrolled", info, err)
	}
	now := time.Now()
	code, err := totp.Default.CodeAt(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		if c, _ := totp.Default.CodeAt(secret, now.Add(d)); c == wrong {
			wrong = "999999"
		}
	}
	if _, err := c.ActivateTOTP(ctx, "bob", wrong, false); !errors.Is(err, enroll.ErrWrongCode) || !errors.Is(err, admin.ErrWrongCode) {
		t.Fatalf("wrong code: %v, want ErrWrongCode", err)
	}
	codes, err := c.ActivateTOTP(ctx, "bob", code, false)
	if err != nil || len(codes) != admin.RecoveryCodeCount {
		t.Fatalf("activate: %d codes, %v", len(codes), err)
	}
	if _, err := c.BeginEnroll(ctx, "bob", false); !errors.Is(err, admin.ErrAlreadyEnrolled) {
		t.Fatalf("begin with an active token: %v, want ErrAlreadyEnrolled", err)
	}
	// Five wrong codes on a forced re-enrollment discard it.
	if _, err := c.BeginEnroll(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= admin.MaxEnrollTries; i++ {
		_, err := c.ActivateTOTP(ctx, "bob", "12345"+fmt.Sprint(i), true)
		want := admin.ErrWrongCode
		if i == admin.MaxEnrollTries {
			want = admin.ErrEnrollDiscarded
		}
		if !errors.Is(err, want) {
			// A random secret may match one of these; vanishingly rare.
			t.Fatalf("wrong code %d: %v, want %v", i, err, want)
		}
	}
	if info, _ := c.ShowUser(ctx, "bob"); info.PendingEnroll || !info.Enrolled {
		t.Errorf("after the discarded re-enrollment: %+v; want the old token, nothing pending", info)
	}
}
