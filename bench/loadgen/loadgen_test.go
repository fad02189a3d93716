package loadgen

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base32"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/importer"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/totp"
	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

var testSecret = []byte("loadgen-test-secret-0123456789")

// fakeServer is an independent RADIUS server (layeh PacketServer, pquerna/otp
// validation) that enforces what loadgen must honour: a valid
// Message-Authenticator on every request and one use per code.
type fakeServer struct {
	addr     string
	mu       sync.Mutex
	keys     map[string]string // user -> base32 secret
	pws      map[string]string
	last     map[string]uint64 // user -> last accepted step
	badMA    int
	replays  int
	accepted int
	states   map[string]string // state -> user
	wrongKey bool              // sign responses with a wrong secret
}

func startFake(t *testing.T, users []User) *fakeServer {
	t.Helper()
	f := &fakeServer{keys: map[string]string{}, pws: map[string]string{}, last: map[string]uint64{}, states: map[string]string{}}
	for _, u := range users {
		f.keys[u.Name] = base32.StdEncoding.EncodeToString(u.Key)
		f.pws[u.Name] = u.Password
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	srv := &radius.PacketServer{
		SecretSource: radius.StaticSecretSource(testSecret),
		Handler:      radius.HandlerFunc(f.handle),
	}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return f
}

func requestMAValid(p *radius.Packet) bool {
	got, err := rfc2869.MessageAuthenticator_Lookup(p)
	if err != nil || len(got) != 16 {
		return false
	}
	cp := *p
	cp.Attributes = nil
	for _, a := range p.Attributes {
		if a.Type == rfc2869.MessageAuthenticator_Type {
			a = &radius.AVP{Type: a.Type, Attribute: make([]byte, 16)}
		}
		cp.Attributes = append(cp.Attributes, a)
	}
	raw, err := cp.MarshalBinary()
	if err != nil {
		return false
	}
	m := hmac.New(md5.New, p.Secret)
	m.Write(raw)
	return hmac.Equal(m.Sum(nil), got)
}

func (f *fakeServer) handle(w radius.ResponseWriter, r *radius.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !requestMAValid(r.Packet) {
		f.badMA++
		return // silently discard
	}
	user := rfc2865.UserName_GetString(r.Packet)
	pw := rfc2865.UserPassword_GetString(r.Packet)
	code := radius.CodeAccessReject
	var state []byte
	switch st := rfc2865.State_Get(r.Packet); {
	case st != nil:
		if f.states[string(st)] == user {
			delete(f.states, string(st))
			code = f.checkCode(user, pw)
		}
	case f.pws[user] != "" && f.pws[user] == pw: // challenge mode, first leg
		state = []byte("st-" + user)
		f.states[string(state)] = user
		code = radius.CodeAccessChallenge
	case len(pw) > 6 && f.pws[user] == pw[:len(pw)-6]: // append
		code = f.checkCode(user, pw[len(pw)-6:])
	case len(pw) == 6: // otp-only
		code = f.checkCode(user, pw)
	}
	resp := r.Response(code)
	if state != nil {
		rfc2865.State_Set(resp, state)
	}
	resp.Attributes = append(radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}, resp.Attributes...)
	if f.wrongKey {
		resp.Secret = []byte("some-other-secret-entirely")
	}
	raw, _ := resp.MarshalBinary()
	m := hmac.New(md5.New, resp.Secret)
	m.Write(raw)
	copy(resp.Attributes[0].Attribute, m.Sum(nil))
	w.Write(resp)
}

func (f *fakeServer) checkCode(user, code string) radius.Code {
	key, ok := f.keys[user]
	if !ok {
		return radius.CodeAccessReject
	}
	now := time.Now()
	step := uint64(now.Unix()) / 30 // not totp's: this server is independent of the generator
	for _, s := range []uint64{step - 1, step, step + 1} {
		ok, _ := pqtotp.ValidateCustom(code, key, time.Unix(int64(s)*30, 0), pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if !ok {
			continue
		}
		if s <= f.last[user] {
			f.replays++
			return radius.CodeAccessReject
		}
		f.last[user] = s
		f.accepted++
		return radius.CodeAccessAccept
	}
	return radius.CodeAccessReject
}

func genUsers(t *testing.T, n int, hash string) ([]User, string) {
	t.Helper()
	var buf bytes.Buffer
	shared, err := GenerateUsers(&buf, n, true, hash)
	if err != nil {
		t.Fatal(err)
	}
	users, err := ReadUsers(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range users { // the fake server recognises the first leg by prefix
		users[i].Password = "pw-" + users[i].Name
	}
	return users, shared
}

func TestCodeMatchesPquerna(t *testing.T) {
	users, _ := genUsers(t, 20, "plain")
	for _, u := range users {
		for _, ts := range []int64{59, 1111111109, 1234567890, 2000000000, 20000000000} {
			want, err := pqtotp.GenerateCodeCustom(base32.StdEncoding.EncodeToString(u.Key), time.Unix(ts, 0),
				pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			if got := totp.Default.Code(u.Key, totp.Default.Step(time.Unix(ts, 0))); got != want {
				t.Fatalf("Code(t=%d) = %s, pquerna/otp says %s", ts, got, want)
			}
		}
	}
}

func TestRFC6238Vector(t *testing.T) {
	// RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits) -> 287082.
	if got := totp.Default.Code([]byte("12345678901234567890"), totp.Default.Step(time.Unix(59, 0))); got != "287082" {
		t.Fatalf("Code = %s, want 287082", got)
	}
}

func TestRunModes(t *testing.T) {
	for _, mode := range []Mode{ModeOTPOnly, ModeAppend, ModeChallenge} {
		t.Run(string(mode), func(t *testing.T) {
			users, _ := genUsers(t, 200, "plain")
			f := startFake(t, users)
			var mu sync.Mutex
			seen := map[string]bool{}
			res, err := Run(context.Background(), Config{
				Server: f.addr, Secret: testSecret, Users: users, Concurrency: 8, N: 150,
				Duration: 20 * time.Second, Mode: mode, Timeout: time.Second,
				OnAccept: func(user, code string, step uint64) {
					mu.Lock()
					defer mu.Unlock()
					if seen[user+code] {
						t.Errorf("accept of %s reported twice", user)
					}
					seen[user+code] = true
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.badMA != 0 || f.replays != 0 {
				t.Fatalf("server saw %d bad Message-Authenticators and %d replays", f.badMA, f.replays)
			}
			// A step boundary during the run may cost a login or two.
			if res.Logins != 150 || res.Accept < 148 || res.Accept != f.accepted || len(seen) != res.Accept {
				t.Fatalf("logins %d accept %d (server accepted %d, callbacks %d), want 150", res.Logins, res.Accept, f.accepted, len(seen))
			}
			if res.Timeout+res.Invalid+res.NoMA+res.Errors != 0 {
				t.Fatalf("timeouts %d invalid %d no MA %d errors %d", res.Timeout, res.Invalid, res.NoMA, res.Errors)
			}
			if mode == ModeChallenge && res.Challenge != 150 {
				t.Fatalf("challenges %d, want 150", res.Challenge)
			}
			if len(res.Latencies) != res.Logins || res.Percentile(0.5) <= 0 || res.Percentile(0.99) > res.Max() {
				t.Fatalf("latencies: %d samples, p50 %v p99 %v max %v", len(res.Latencies), res.Percentile(0.5), res.Percentile(0.99), res.Max())
			}
		})
	}
}

func TestRunRejectsForgedResponses(t *testing.T) {
	users, _ := genUsers(t, 10, "plain")
	f := startFake(t, users)
	f.mu.Lock()
	f.wrongKey = true
	f.mu.Unlock()
	res, err := Run(context.Background(), Config{
		Server: f.addr, Secret: testSecret, Users: users, Concurrency: 2, N: 4,
		Duration: 10 * time.Second, Mode: ModeOTPOnly, Timeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accept != 0 || res.Timeout != 4 || res.Invalid != 4 {
		t.Fatalf("accept %d timeout %d invalid %d; want 0, 4, 4 (responses signed with another secret must be dropped)", res.Accept, res.Timeout, res.Invalid)
	}
}

func TestCursorNeverRepeatsUserInStep(t *testing.T) {
	users := make([]User, 3)
	now := time.Unix(30*1000+5, 0)
	var mu sync.Mutex
	c := &cursor{users: users, now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	for want := range 3 {
		i, s, err := c.take(context.Background())
		if err != nil || i != want || s != 1000 {
			t.Fatalf("take = %d, %d, %v; want %d, 1000", i, s, err, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := c.take(ctx); err == nil {
		t.Fatal("a fourth take in the same step succeeded; it must wait for the next step")
	}
	if c.exhausted != 1 || c.waited <= 0 {
		t.Fatalf("exhausted %d waited %v, want 1 and > 0", c.exhausted, c.waited)
	}
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	if i, s, err := c.take(context.Background()); err != nil || i != 0 || s != 1001 {
		t.Fatalf("take in the next step = %d, %d, %v; want 0, 1001", i, s, err)
	}
}

func TestGeneratedUsersImport(t *testing.T) {
	for _, hash := range []string{"", "plain", "bcrypt:4", "argon2id"} {
		t.Run("hash="+hash, func(t *testing.T) {
			var buf bytes.Buffer
			shared, err := GenerateUsers(&buf, 5, hash != "", hash)
			if err != nil {
				t.Fatal(err)
			}
			csvText := buf.String()
			imp, err := importer.ParseCSV(strings.NewReader(csvText))
			if err != nil {
				t.Fatalf("otpgate import would refuse the generated CSV: %v", err)
			}
			users, err := ReadUsers(strings.NewReader(csvText))
			if err != nil {
				t.Fatal(err)
			}
			if len(imp) != 5 || len(users) != 5 {
				t.Fatalf("imported %d, read %d users; want 5", len(imp), len(users))
			}
			for i, u := range users {
				if len(u.Key) != 20 || u.Name != UserName(i+1) {
					t.Fatalf("user %d: name %q key %d bytes", i, u.Name, len(u.Key))
				}
				switch hash {
				case "":
					if u.Password != "" || u.Hashed {
						t.Fatal("otp-only users got a password")
					}
				case "plain":
					if len(u.Password) != 16 || u.Hashed {
						t.Fatalf("plain password %d chars, hashed %v", len(u.Password), u.Hashed)
					}
				default:
					if !u.Hashed || shared == "" {
						t.Fatal("hash not recognised")
					}
					ok, err := password.Verify(imp[i].Password, shared)
					if err != nil || !ok {
						t.Fatalf("the shared password does not verify against the hash: %v", err)
					}
				}
			}
		})
	}
}

func TestRunOpenLoop(t *testing.T) {
	users, _ := genUsers(t, 2000, "plain")
	f := startFake(t, users)
	res, err := Run(context.Background(), Config{
		Server: f.addr, Secret: testSecret, Users: users, Concurrency: 4, Rate: 1000,
		Duration: time.Second, Mode: ModeAppend, Timeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.badMA != 0 || f.replays != 0 {
		t.Fatalf("server saw %d bad Message-Authenticators and %d replays", f.badMA, f.replays)
	}
	// Paced at 1000/s for 1 s; a step boundary may cost a few.
	if res.Logins < 800 || res.Logins > 1100 || res.Accept < res.Logins-5 || res.Accept != f.accepted {
		t.Fatalf("logins %d accept %d (server %d); want about 1000, all accepted", res.Logins, res.Accept, f.accepted)
	}
	if res.Invalid+res.Errors+res.Timeout != 0 {
		t.Fatalf("invalid %d errors %d timeouts %d", res.Invalid, res.Errors, res.Timeout)
	}
}

func TestRunOpenLoopCountsTimeouts(t *testing.T) {
	users, _ := genUsers(t, 500, "plain")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // a server that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	res, err := Run(context.Background(), Config{
		Server: pc.LocalAddr().String(), Secret: testSecret, Users: users, Concurrency: 2, Rate: 200,
		Duration: 500 * time.Millisecond, Mode: ModeOTPOnly, Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accept != 0 || res.Timeout < 80 || res.Timeout != res.Logins {
		t.Fatalf("accept %d timeout %d logins %d; want every login a timeout (~100)", res.Accept, res.Timeout, res.Logins)
	}
}
