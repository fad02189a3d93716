package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// ordinaryUID is a peer that is neither root, the daemon's user nor in an
// admin group.
const ordinaryUID = 54321

func requestFor(rt route, peer unix.Ucred) *http.Request {
	path := strings.ReplaceAll(rt.path, "{name}", "alice")
	req := httptest.NewRequest(rt.method, "http://"+Host+path, strings.NewReader(`{}`))
	req.Host = Host
	return req.WithContext(withPeer(req.Context(), peer))
}

// TestOrdinaryUserReachesOnlySelfEnroll walks the admin socket's route
// table, so a route added later is covered without being listed: an
// ordinary user is refused every admin route on the admin socket, and the
// self-enrollment socket serves none of them.
func TestOrdinaryUserReachesOnlySelfEnroll(t *testing.T) {
	if os.Geteuid() == ordinaryUID {
		t.Skip("test uid collides with euid")
	}
	peer := unix.Ucred{Uid: ordinaryUID, Gid: ordinaryUID}
	svc := &fakeService{}
	adminSrv := NewServer(svc, ServerOptions{}, testLogger(t))
	self := NewSelfServer(svc, "Example", testLogger(t))
	self.lookup = func(uint32) (string, error) { return "alice", nil }
	selfPaths := map[string]bool{}
	for _, rt := range self.selfRoutes() {
		selfPaths[rt.method+" "+rt.path] = true
	}
	routes := adminSrv.routes()
	if len(routes) < 15 {
		t.Fatalf("only %d admin routes", len(routes))
	}
	for _, rt := range routes {
		if selfPaths[rt.method+" "+rt.path] {
			t.Errorf("%s %s is on both sockets", rt.method, rt.path)
		}
		rec := httptest.NewRecorder()
		adminSrv.Handler().ServeHTTP(rec, requestFor(rt, peer))
		if rec.Code != 403 {
			t.Errorf("admin socket: ordinary user %s %s = %d, want 403", rt.method, rt.path, rec.Code)
		}
		rec = httptest.NewRecorder()
		self.Handler().ServeHTTP(rec, requestFor(rt, peer))
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), "serves only") {
			t.Errorf("self socket: %s %s = %d %s, want 404", rt.method, rt.path, rec.Code, rec.Body)
		}
	}
	if len(svc.calls) > 0 {
		t.Errorf("the service was called: %v", svc.calls)
	}
}

// TestSelfEnroll runs the whole self-enrollment over a real socket: the
// name comes from the peer's uid, an unknown or enrolled user is refused
// with advice, and the request body can't name another user.
func TestSelfEnroll(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	local := admin.NewLocal(st, password.Params{Time: 1, MemKiB: 1024, Threads: 1}, "Example VPN")
	for _, n := range []string{"alice", "bob"} {
		if err := local.AddUser(ctx, admin.NewUser{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	who := "alice"
	self := NewSelfServer(local, "Example VPN", testLogger(t))
	self.lookup = func(uid uint32) (string, error) {
		if uid != uint32(os.Geteuid()) {
			return "", errors.New("unexpected uid")
		}
		return who, nil
	}
	path := filepath.Join(dir, "run", "enroll.sock")
	ln, err := self.ListenSelf(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v, %v; want 0666", fi.Mode().Perm(), err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- self.ServeListener(sctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	c, status, err := DialSelf(ctx, path)
	if err != nil || status.User != "alice" || status.Enrolled || status.Issuer != "Example VPN" {
		t.Fatalf("DialSelf = %+v, %v", status, err)
	}
	defer c.Close()
	// The body can't choose the user.
	if err := c.c.do(ctx, "POST", "/v1/self/enroll", map[string]string{"user": "bob"}, nil); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("enroll naming bob: %v", err)
	}
	enr, err := c.Begin(ctx)
	if err != nil || enr.User != "alice" {
		t.Fatalf("Begin = %+v, %v", enr, err)
	}
	if _, err := c.Activate(ctx, "000000x"); !errors.Is(err, admin.ErrWrongCode) {
		t.Fatalf("bad code: %v", err)
	}
	code, err := totp.Default.CodeAt(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	codes, err := c.Activate(ctx, code)
	if err != nil || len(codes) != admin.RecoveryCodeCount {
		t.Fatalf("Activate: %d codes, %v", len(codes), err)
	}
	if u, _ := st.Get(ctx, "bob"); u.PendingTOTP != nil || u.TOTP != nil {
		t.Error("bob was touched")
	}
	_, err = c.Begin(ctx)
	if !errors.Is(err, admin.ErrAlreadyEnrolled) || !strings.Contains(err.Error(), "ask your administrator to reset") {
		t.Fatalf("second enrollment: %v", err)
	}
	who = "mallory"
	_, _, err = DialSelf(ctx, path)
	if !errors.Is(err, ErrSelfUnknownUser) || !strings.Contains(err.Error(), "ask your administrator to add you") {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestListenSelfRefusesUnsafeDirectory: the self-enrollment socket's
// directory is held to the admin socket's rule. In a sticky world-writable
// directory (/tmp) another user could bind the name while otpgated is down
// and be the daemon users enroll with.
func TestListenSelfRefusesUnsafeDirectory(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the socket's directory
		want  string
	}{
		{"sticky world-writable", func(t *testing.T, dir string) string {
			chmod(t, dir, os.ModeSticky|0o777)
			return dir
		}, "is writable by group or others (mode 0777)"},
		{"world-writable parent", func(t *testing.T, dir string) string {
			chmod(t, dir, 0o777)
			return filepath.Join(dir, "run")
		}, "is writable by group or others (mode 0777)"},
		{"owned by another user", func(t *testing.T, dir string) string {
			testtool.RequireRoot(t, "to give the directory to another user (chown)")
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "is owned by nobody (uid 65534)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(tt.setup(t, t.TempDir()), "enroll.sock")
			ln, err := NewSelfServer(&fakeService{}, "Example", testLogger(t)).ListenSelf(path)
			if err == nil {
				ln.Close()
				t.Fatalf("ListenSelf(%s) accepted an unsafe directory", path)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "self-enrollment socket") {
				t.Errorf("ListenSelf = %v, want it to name the socket and say %q", err, tt.want)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a socket was made at %s: %v", path, err)
			}
		})
	}
}

// TestDialSelfRefusesPlantedSocket: otpgate enroll sends nothing to a
// self-enrollment socket another user owns or could have put there.
func TestDialSelfRefusesPlantedSocket(t *testing.T) {
	ctx := context.Background()
	serve := func(t *testing.T, svc *fakeService, path string) {
		t.Helper()
		self := NewSelfServer(svc, "Example", testLogger(t))
		self.lookup = func(uint32) (string, error) { return "alice", nil }
		ln, err := self.ListenSelf(path)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- self.ServeListener(sctx, ln) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("socket owned by another user", func(t *testing.T) {
		testtool.RequireRoot(t, "to plant a socket owned by another user (chown)")
		svc := &fakeService{}
		path := filepath.Join(t.TempDir(), "enroll.sock")
		serve(t, svc, path)
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, _, err := DialSelf(ctx, path)
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "owned by nobody (uid 65534)") {
			t.Errorf("DialSelf to another user's socket = %v, want ErrUntrusted naming the owner", err)
		}
		if len(svc.calls) > 0 {
			t.Errorf("the service was called: %v", svc.calls)
		}
	})
	t.Run("socket in a sticky world-writable directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "enroll.sock")
		ln, err := net.Listen("unix", path) // as a planter would, in /tmp
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		chmod(t, dir, os.ModeSticky|0o777)
		_, _, err = DialSelf(ctx, path)
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "is writable by group or others") {
			t.Errorf("DialSelf to a socket in a sticky directory = %v, want ErrUntrusted", err)
		}
	})
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
