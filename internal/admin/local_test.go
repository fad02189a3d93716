package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/enroll/recovery"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/totp"
)

// testParams keeps argon2id cheap in tests.
var testParams = password.Params{Time: 1, MemKiB: 1024, Threads: 1}

var testNow = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func newLocal(t *testing.T) (*Local, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "otpgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := NewLocal(st, testParams, "Example VPN")
	l.now = func() time.Time { return testNow }
	return l, st
}

var secret20 = []byte("12345678901234567890") // RFC 6238 test key

func TestAddUser(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		in      NewUser
		wantErr error
		check   func(t *testing.T, u store.User)
	}{
		{name: "with password", in: NewUser{Name: "alice", Groups: []string{"vpn", " admins ", "vpn"}, Password: "correct horse"},
			check: func(t *testing.T, u store.User) {
				ok, err := password.Verify(u.PasswordHash, "correct horse")
				if err != nil || !ok {
					t.Errorf("Verify(stored hash) = %v, %v; want true", ok, err)
				}
				if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
					t.Errorf("hash %q is not argon2id", u.PasswordHash)
				}
				if want := []string{"vpn", "admins"}; !slices.Equal(u.Groups, want) {
					t.Errorf("groups = %q, want %q", u.Groups, want)
				}
				if !u.Created.Equal(testNow) {
					t.Errorf("created = %v, want %v", u.Created, testNow)
				}
			}},
		{name: "otp only", in: NewUser{Name: "bob"},
			check: func(t *testing.T, u store.User) {
				if u.PasswordHash != "" || u.TOTP != nil {
					t.Errorf("OTP-only user has hash %q, totp %v", u.PasswordHash, u.TOTP)
				}
			}},
		{name: "duplicate", in: NewUser{Name: "existing"}, wantErr: store.ErrUserExists},
		{name: "invalid name", in: NewUser{Name: "-rf"}, wantErr: store.ErrInvalidName},
		{name: "name with space", in: NewUser{Name: "a b"}, wantErr: store.ErrInvalidName},
		{name: "group with comma", in: NewUser{Name: "carol", Groups: []string{"a,b"}}, wantErr: ErrInvalidGroup},
		{name: "empty group", in: NewUser{Name: "carol", Groups: []string{" "}}, wantErr: ErrInvalidGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, st := newLocal(t)
			if err := l.AddUser(ctx, NewUser{Name: "existing"}); err != nil {
				t.Fatal(err)
			}
			err := l.AddUser(ctx, tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("AddUser(%+v) = %v, want %v", tc.in, err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			u, err := st.Get(ctx, tc.in.Name)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, u)
		})
	}
}

func TestUnknownUser(t *testing.T) {
	ctx := context.Background()
	l, _ := newLocal(t)
	ops := map[string]func() error{
		"SetPassword":      func() error { return l.SetPassword(ctx, "ghost", "pw") },
		"ShowUser":         func() error { _, err := l.ShowUser(ctx, "ghost"); return err },
		"SetDisabled":      func() error { return l.SetDisabled(ctx, "ghost", true) },
		"DeleteUser":       func() error { return l.DeleteUser(ctx, "ghost") },
		"Unlock":           func() error { return l.Unlock(ctx, "ghost") },
		"SetGroups":        func() error { return l.SetGroups(ctx, "ghost", []string{"vpn"}) },
		"BeginEnroll":      func() error { _, err := l.BeginEnroll(ctx, "ghost", false); return err },
		"ActivateTOTP":     func() error { _, err := l.ActivateTOTP(ctx, "ghost", "123456", false); return err },
		"ResetMFA":         func() error { return l.ResetMFA(ctx, "ghost") },
		"NewRecoveryCodes": func() error { _, err := l.NewRecoveryCodes(ctx, "ghost"); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			if err := op(); !errors.Is(err, store.ErrUserNotFound) {
				t.Errorf("%s(ghost) = %v, want ErrUserNotFound", name, err)
			}
		})
	}
}

func TestUserChanges(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(u *store.User)
		op    func(l *Local) error
		check func(t *testing.T, u store.User)
	}{
		{name: "set password", op: func(l *Local) error { return l.SetPassword(ctx, "alice", "new pw") },
			check: func(t *testing.T, u store.User) {
				if ok, _ := password.Verify(u.PasswordHash, "new pw"); !ok {
					t.Error("new password does not verify")
				}
			}},
		{name: "clear password", setup: func(u *store.User) { u.PasswordHash = "$2b$04$abcdefghijklmnopqrstuu5Z0Ltj3Q2sHVWlC4LnvZ8c7Yr8R3oS6" },
			op: func(l *Local) error { return l.SetPassword(ctx, "alice", "") },
			check: func(t *testing.T, u store.User) {
				if u.PasswordHash != "" {
					t.Errorf("hash = %q, want none", u.PasswordHash)
				}
			}},
		{name: "disable", op: func(l *Local) error { return l.SetDisabled(ctx, "alice", true) },
			check: func(t *testing.T, u store.User) {
				if !u.Disabled {
					t.Error("not disabled")
				}
			}},
		{name: "enable", setup: func(u *store.User) { u.Disabled = true },
			op: func(l *Local) error { return l.SetDisabled(ctx, "alice", false) },
			check: func(t *testing.T, u store.User) {
				if u.Disabled {
					t.Error("still disabled")
				}
			}},
		{name: "unlock", setup: func(u *store.User) {
			u.CodeFailures, u.LockedUntil, u.LastFailure = 7, testNow.Add(time.Hour), testNow
		},
			op: func(l *Local) error { return l.Unlock(ctx, "alice") },
			check: func(t *testing.T, u store.User) {
				if u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
					t.Errorf("failures %d, locked until %v; want 0, zero", u.CodeFailures, u.LockedUntil)
				}
			}},
		{name: "set groups", setup: func(u *store.User) { u.Groups = []string{"old"} },
			op: func(l *Local) error { return l.SetGroups(ctx, "alice", []string{"vpn", "ops"}) },
			check: func(t *testing.T, u store.User) {
				if !slices.Equal(u.Groups, []string{"vpn", "ops"}) {
					t.Errorf("groups = %q", u.Groups)
				}
			}},
		{name: "clear groups", setup: func(u *store.User) { u.Groups = []string{"old"} },
			op: func(l *Local) error { return l.SetGroups(ctx, "alice", nil) },
			check: func(t *testing.T, u store.User) {
				if len(u.Groups) != 0 {
					t.Errorf("groups = %q", u.Groups)
				}
			}},
		{name: "reset mfa", setup: func(u *store.User) {
			u.TOTP = newTOTP(secret20, totp.Default, testNow)
			u.PendingTOTP = newTOTP([]byte("pending-secret-012345"), totp.Default, testNow)
			u.PendingTries = 2
			u.RecoveryCodes = []string{"h1", "h2"}
		},
			op: func(l *Local) error { return l.ResetMFA(ctx, "alice") },
			check: func(t *testing.T, u store.User) {
				if u.TOTP != nil || len(u.RecoveryCodes) != 0 {
					t.Errorf("totp %v, %d recovery codes left", u.TOTP, len(u.RecoveryCodes))
				}
				if u.PendingTOTP != nil || u.PendingTries != 0 {
					t.Errorf("pending token %v (%d tries) survived the reset", u.PendingTOTP, u.PendingTries)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, st := newLocal(t)
			u := store.User{Name: "alice", Created: testNow}
			if tc.setup != nil {
				tc.setup(&u)
			}
			if err := st.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
			if err := tc.op(l); err != nil {
				t.Fatal(err)
			}
			got, err := st.Get(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got)
		})
	}
	t.Run("delete", func(t *testing.T) {
		l, st := newLocal(t)
		if err := l.AddUser(ctx, NewUser{Name: "alice"}); err != nil {
			t.Fatal(err)
		}
		if err := l.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, "alice"); !errors.Is(err, store.ErrUserNotFound) {
			t.Errorf("Get after delete = %v, want ErrUserNotFound", err)
		}
	})
}

// checkCodes asserts that u stores exactly the hashes of codes.
func checkCodes(t *testing.T, st store.Store, u store.User, codes []string) {
	t.Helper()
	if len(u.RecoveryCodes) != len(codes) {
		t.Fatalf("%d stored recovery codes, want %d", len(u.RecoveryCodes), len(codes))
	}
	for _, c := range codes {
		n, ok := recovery.Normalize(c)
		if !ok {
			t.Fatalf("code %d is not a recovery code", len(c))
		}
		if !slices.Contains(u.RecoveryCodes, st.HashRecoveryCode(u.Name, n)) {
			t.Errorf("a returned code is not stored")
		}
		if slices.Contains(u.RecoveryCodes, c) || slices.Contains(u.RecoveryCodes, n) {
			t.Errorf("a recovery code is stored in clear")
		}
	}
}

// errAny marks a test case that wants some error.
var errAny = errors.New("any error")

func TestNewRecoveryCodes(t *testing.T) {
	ctx := context.Background()
	l, st := newLocal(t)
	if err := l.AddUser(ctx, NewUser{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.NewRecoveryCodes(ctx, "alice"); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("NewRecoveryCodes(not enrolled) = %v, want ErrNotEnrolled", err)
	}
	first, secret := enrollNow(t, l, "alice", false)
	second, err := l.NewRecoveryCodes(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := st.Get(ctx, "alice")
	checkCodes(t, st, u, second)
	for _, c := range first {
		n, _ := recovery.Normalize(c)
		if slices.Contains(u.RecoveryCodes, st.HashRecoveryCode("alice", n)) {
			t.Error("an old recovery code still works")
		}
	}
	if !bytes.Equal(u.TOTP.Secret, secret) {
		t.Error("new recovery codes changed the token")
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	bcryptHash := "$2b$04$abcdefghijklmnopqrstuu5Z0Ltj3Q2sHVWlC4LnvZ8c7Yr8R3oS6"
	argonHash, err := password.Hash("argon pw", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !password.IsHash(bcryptHash) {
		t.Fatalf("test bcrypt hash is not recognised")
	}
	good := []ImportUser{
		{Name: "plain", Groups: []string{"vpn"}, Password: "plain pw", Secret: secret20},
		{Name: "bcrypt", Password: bcryptHash},
		{Name: "argon", Password: argonHash, Secret: secret20, RecoveryCodes: []string{"12345678", "ABCD-EFGH-IJKL-MNOP"}},
		{Name: "otponly", Secret: secret20},
	}
	tests := []struct {
		name    string
		in      []ImportUser
		wantErr error
		leak    string // must not appear in the error
	}{
		{name: "good", in: good},
		{name: "duplicate in batch", in: append(slices.Clone(good), ImportUser{Name: "plain"}), wantErr: ErrInvalidImport},
		{name: "existing user", in: append(slices.Clone(good), ImportUser{Name: "existing"}), wantErr: store.ErrUserExists},
		{name: "invalid name", in: append(slices.Clone(good), ImportUser{Name: "bad name"}), wantErr: store.ErrInvalidName},
		{name: "bad recovery code", in: append(slices.Clone(good), ImportUser{Name: "x", Secret: secret20, RecoveryCodes: []string{"hunter2!"}}), wantErr: ErrInvalidImport, leak: "hunter2"},
		{name: "codes without secret", in: append(slices.Clone(good), ImportUser{Name: "x", RecoveryCodes: []string{"12345678"}}), wantErr: ErrInvalidImport},
		{name: "short secret", in: append(slices.Clone(good), ImportUser{Name: "x", Secret: []byte("abc")}), wantErr: ErrInvalidImport},
		{name: "bad group", in: append(slices.Clone(good), ImportUser{Name: "x", Groups: []string{"a b"}}), wantErr: ErrInvalidGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, st := newLocal(t)
			if err := l.AddUser(ctx, NewUser{Name: "existing"}); err != nil {
				t.Fatal(err)
			}
			n, err := l.Import(ctx, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Import = %d, %v; want %v", n, err, tc.wantErr)
				}
				if tc.leak != "" && strings.Contains(err.Error(), tc.leak) {
					t.Errorf("error %q contains the secret value", err)
				}
				all, _ := st.List(ctx)
				if len(all) != 1 {
					t.Errorf("failed import left %d users, want only the existing one", len(all))
				}
				return
			}
			if err != nil || n != len(tc.in) {
				t.Fatalf("Import = %d, %v; want %d, nil", n, err, len(tc.in))
			}
			get := func(name string) store.User {
				u, err := st.Get(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				return u
			}
			if u := get("plain"); !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
				t.Errorf("plaintext password stored as %q", u.PasswordHash)
			} else if ok, _ := password.Verify(u.PasswordHash, "plain pw"); !ok {
				t.Error("imported plaintext password does not verify")
			}
			if u := get("bcrypt"); u.PasswordHash != bcryptHash || u.TOTP != nil {
				t.Errorf("bcrypt user: hash %q, totp %v", u.PasswordHash, u.TOTP)
			}
			a := get("argon")
			if a.PasswordHash != argonHash {
				t.Error("argon2id hash was not stored as is")
			}
			checkCodes(t, st, a, []string{"12345678", "ABCD-EFGH-IJKL-MNOP"})
			o := get("otponly")
			if o.PasswordHash != "" || o.TOTP == nil || !bytes.Equal(o.TOTP.Secret, secret20) || o.TOTP.Algorithm != "SHA1" || o.TOTP.Digits != 6 || o.TOTP.Period != 30 {
				t.Errorf("otp-only user stored as %+v / %+v", o, o.TOTP)
			}
		})
	}
}

func TestUserInfoHidesSecrets(t *testing.T) {
	ctx := context.Background()
	l, st := newLocal(t)
	hash, _ := password.Hash("pw", testParams)
	u := store.User{
		Name: "alice", Groups: []string{"vpn"}, PasswordHash: hash, Created: testNow,
		TOTP:          &store.TOTP{Secret: secret20, Algorithm: "SHA1", Digits: 6, Period: 30, LastStep: 59000000, Enrolled: testNow},
		RecoveryCodes: []string{st.HashRecoveryCode("alice", "12345678")},
		CodeFailures:  3, LockedUntil: testNow.Add(time.Minute), LastFailure: testNow, LastSuccess: testNow,
	}
	if err := st.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	info, err := l.ShowUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := UserInfo{
		Name: "alice", Groups: []string{"vpn"}, HasPassword: true, Password: "local", Enrolled: true, EnrolledAt: testNow,
		LastCodeAt: time.Unix(59000000*30, 0).UTC(), RecoveryLeft: 1, CodeFailures: 3,
		LockedUntil: testNow.Add(time.Minute), LastFailure: testNow, Created: testNow, LastSuccess: testNow,
	}
	gotJSON, _ := json.Marshal(info)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("ShowUser =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	list, err := l.ListUsers(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListUsers = %v, %v", list, err)
	}
	listJSON, _ := json.Marshal(list[0])
	for _, leak := range []string{hash, string(secret20), u.RecoveryCodes[0], "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA"} {
		if bytes.Contains(gotJSON, []byte(leak)) || bytes.Contains(listJSON, []byte(leak)) {
			t.Errorf("UserInfo JSON contains a secret: %s", gotJSON)
		}
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	l, _ := newLocal(t)
	if err := l.AddUser(ctx, NewUser{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := l.Backup(ctx, &buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v (buffer %d bytes)", n, err, buf.Len())
	}
}

// BenchmarkImport100k imports 100,000 OTP-only users into a fresh store per
// iteration: go test ./internal/admin -run '^$' -bench Import100k -benchtime 1x
func BenchmarkImport100k(b *testing.B) {
	const n = 100_000
	users := make([]ImportUser, n)
	for i := range users {
		secret := make([]byte, 20)
		copy(secret, fmt.Sprintf("seed-%015d", i))
		users[i] = ImportUser{Name: fmt.Sprintf("user%06d", i), Groups: []string{"vpn"}, Secret: secret}
	}
	for b.Loop() {
		b.StopTimer()
		st, err := store.Open(filepath.Join(b.TempDir(), "otpgate.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		l := NewLocal(st, testParams, "bench")
		b.StartTimer()
		if got, err := l.Import(context.Background(), users); err != nil || got != n {
			b.Fatalf("Import = %d, %v", got, err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "users/op")
}
