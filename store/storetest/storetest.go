// Package storetest is the conformance suite every store backend passes:
// the behaviour the rest of otpgate relies on, whatever holds the data.
// A backend's test calls Run with a Backend that opens its stores.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/store"
)

// Backend opens the stores the suite runs on.
type Backend struct {
	// Open returns a new, empty store. The suite closes it.
	Open func(t *testing.T) store.Store
	// Reopen closes st and opens the same database again (a restart).
	Reopen func(t *testing.T, st store.Store) store.Store
	// Restore opens a new store from what Backup wrote.
	Restore func(t *testing.T, backup []byte) store.Store
	// Migrated opens a store written by the oldest layout the backend
	// still reads, and names the users in it. Nil: skipped.
	Migrated func(t *testing.T) (st store.Store, users []string)
	// FullDisk runs fn on st while its storage cannot grow. Nil: skipped,
	// for a backend whose storage a test cannot fill (a database server's
	// disk).
	FullDisk func(t *testing.T, st store.Store, fn func())
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"CreateGetListDelete", testCRUD},
		{"InvalidNames", testInvalidNames},
		{"ConcurrentUpdatesOfOneUser", testConcurrentUpdates},
		{"ReplayRuleUnderContention", testReplayRule},
		{"LockoutCounters", testLockout},
		{"RecoveryCodes", testRecoveryCodes},
		{"PendingEnrollment", testPending},
		{"Migrations", testMigrations},
		{"BackupRestore", testBackupRestore},
		{"FullDisk", testFullDisk},
		{"Closed", testClosed},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
	}
}

// open opens a store that is closed at cleanup (*st, so Reopen can
// replace it).
func open(t *testing.T, b Backend) *store.Store {
	st := b.Open(t)
	p := &st
	t.Cleanup(func() { (*p).Close() })
	return p
}

func user(name string) store.User {
	return store.User{
		Name: name, Groups: []string{"vpn"}, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
		TOTP: &store.TOTP{Secret: []byte("0123456789abcdefghij"), Algorithm: "SHA1", Digits: 6, Period: 30,
			Enrolled: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func mustGet(t *testing.T, st store.Store, name string) store.User {
	t.Helper()
	u, err := st.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return u
}

var errReused = errors.New("storetest: step already used")

// accept is auth's replay rule: a step is accepted once, and only above
// the last accepted one.
func accept(step uint64) func(u *store.User) error {
	return func(u *store.User) error {
		if step <= u.TOTP.LastStep {
			return errReused
		}
		u.TOTP.LastStep = step
		return nil
	}
}

func testCRUD(t *testing.T, b Backend) {
	ctx := context.Background()
	st := *open(t, b)
	if err := st.Create(ctx, user("bob")); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, user("bob")); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("second Create: %v, want ErrUserExists", err)
	}
	if err := st.Create(ctx, user("-x")); !errors.Is(err, store.ErrInvalidName) {
		t.Errorf("Create of an invalid name: %v, want ErrInvalidName", err)
	}
	if err := st.Import(ctx, []store.User{user("carol"), user("alice")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Import(ctx, []store.User{user("dave"), user("bob")}); !errors.Is(err, store.ErrUserExists) {
		t.Errorf("Import with an existing name: %v, want ErrUserExists", err)
	}
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob", "carol"}) {
		t.Errorf("List = %v, want alice bob carol (dave's failed import wrote nothing)", names)
	}
	if u := mustGet(t, st, "bob"); !bytes.Equal(u.TOTP.Secret, user("bob").TOTP.Secret) {
		t.Error("the seed does not read back")
	}
	if err := st.Delete(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		st.Delete(ctx, "bob"),
		st.Update(ctx, "bob", func(*store.User) error { return nil }),
		st.UpdateLogin(ctx, "bob", func(*store.User) error { return nil }),
		func() error { _, err := st.Get(ctx, "bob"); return err }(),
	} {
		if !errors.Is(err, store.ErrUserNotFound) {
			t.Errorf("on a deleted user: %v, want ErrUserNotFound", err)
		}
	}
	mine := errors.New("mine")
	if err := st.Update(ctx, "alice", func(u *store.User) error { u.Disabled = true; return mine }); !errors.Is(err, mine) {
		t.Errorf("Update whose function fails: %v, want its error", err)
	}
	if mustGet(t, st, "alice").Disabled {
		t.Error("a failed Update wrote")
	}
}

// testInvalidNames: a name no user can have (a NUL, bytes that are not
// UTF-8, a byte outside the name alphabet) is an unknown user on every
// path that looks a user up, never a store failure: auth must answer it
// as it answers any unknown name.
func testInvalidNames(t *testing.T, b Backend) {
	ctx := context.Background()
	st := *open(t, b)
	if err := st.Create(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ali\x00ce", "\x00", "al\xffice", "\xc3\x28", "ali ce"} {
		noop := func(*store.User) error { return nil }
		for op, err := range map[string]error{
			"Get":         func() error { _, err := st.Get(ctx, name); return err }(),
			"Update":      st.Update(ctx, name, noop),
			"UpdateLogin": st.UpdateLogin(ctx, name, noop),
			"Delete":      st.Delete(ctx, name),
		} {
			if !errors.Is(err, store.ErrUserNotFound) || !errors.Is(err, store.ErrInvalidName) {
				t.Errorf("%s(%q): %v, want ErrUserNotFound and ErrInvalidName", op, name, err)
			}
		}
	}
	if u := mustGet(t, st, "alice"); u.Name != "alice" {
		t.Errorf("alice after the invalid names: %+v", u)
	}
}

// testConcurrentUpdates: writers of one user, through both write paths,
// never lose each other's changes.
func testConcurrentUpdates(t *testing.T, b Backend) {
	ctx := context.Background()
	p := open(t, b)
	st := *p
	if err := st.Create(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			update := st.UpdateLogin
			if i%4 == 0 {
				update = st.Update
			}
			if err := update(ctx, "alice", func(u *store.User) error { u.CodeFailures++; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := mustGet(t, st, "alice").CodeFailures; got != n {
		t.Fatalf("%d increments survived, want %d", got, n)
	}
	*p = b.Reopen(t, st)
	if got := mustGet(t, *p, "alice").CodeFailures; got != n {
		t.Fatalf("%d increments after a restart, want %d", got, n)
	}
}

// testReplayRule: many logins race with the same code; exactly one wins,
// for every step, and the winner's step holds after a restart.
func testReplayRule(t *testing.T, b Backend) {
	ctx := context.Background()
	p := open(t, b)
	st := *p
	if err := st.Create(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	for step := uint64(1000); step < 1010; step++ {
		var won atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				err := st.UpdateLogin(ctx, "alice", accept(step))
				switch {
				case err == nil:
					won.Add(1)
				case !errors.Is(err, errReused):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("step %d accepted %d times", step, n)
		}
	}
	*p = b.Reopen(t, st)
	if err := (*p).UpdateLogin(ctx, "alice", accept(1009)); !errors.Is(err, errReused) {
		t.Fatalf("the last step after a restart: %v, want refused", err)
	}
}

func testLockout(t *testing.T, b Backend) {
	ctx := context.Background()
	p := open(t, b)
	if err := (*p).Create(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for i := range 5 {
		err := (*p).UpdateLogin(ctx, "alice", func(u *store.User) error {
			u.CodeFailures++
			u.LastFailure = now.Add(time.Duration(i) * time.Second)
			u.LockedUntil = u.LastFailure.Add(time.Minute)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		u := mustGet(t, *p, "alice")
		if u.CodeFailures != 5 || !u.LockedUntil.Equal(now.Add(4*time.Second+time.Minute)) {
			t.Fatalf("%s: %d failures, locked until %v", when, u.CodeFailures, u.LockedUntil)
		}
	}
	check("after the failures")
	*p = b.Reopen(t, *p)
	check("after a restart")
	// An admin's unlock is durable like any other Update.
	if err := (*p).Update(ctx, "alice", func(u *store.User) error {
		u.CodeFailures, u.LockedUntil = 0, time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	*p = b.Reopen(t, *p)
	if u := mustGet(t, *p, "alice"); u.CodeFailures != 0 || !u.LockedUntil.IsZero() {
		t.Fatalf("unlock lost: %d failures, locked until %v", u.CodeFailures, u.LockedUntil)
	}
}

// testRecoveryCodes: a recovery code is used once, also when logins race
// with it, and its use outlives a restart.
func testRecoveryCodes(t *testing.T, b Backend) {
	ctx := context.Background()
	p := open(t, b)
	st := *p
	u := user("alice")
	u.RecoveryCodes = []string{st.HashRecoveryCode("alice", "code-1"), st.HashRecoveryCode("alice", "code-2")}
	if err := st.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	if st.HashRecoveryCode("alice", "code-1") == st.HashRecoveryCode("bob", "code-1") {
		t.Error("a recovery code hashes alike for two users")
	}
	use := func(code string) func(u *store.User) error {
		h := st.HashRecoveryCode("alice", code)
		return func(u *store.User) error {
			i := slices.Index(u.RecoveryCodes, h)
			if i < 0 {
				return errReused
			}
			u.RecoveryCodes = slices.Delete(u.RecoveryCodes, i, i+1)
			return nil
		}
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if err := st.UpdateLogin(ctx, "alice", use("code-1")); err == nil {
				won.Add(1)
			} else if !errors.Is(err, errReused) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := won.Load(); n != 1 {
		t.Fatalf("recovery code used %d times", n)
	}
	*p = b.Reopen(t, st)
	if err := (*p).UpdateLogin(ctx, "alice", use("code-1")); !errors.Is(err, errReused) {
		t.Fatalf("used recovery code after a restart: %v, want refused", err)
	}
	if err := (*p).UpdateLogin(ctx, "alice", use("code-2")); err != nil {
		t.Fatalf("the other recovery code: %v", err)
	}
}

func testPending(t *testing.T, b Backend) {
	ctx := context.Background()
	p := open(t, b)
	if err := (*p).Create(ctx, store.User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	seed := []byte("pending-seed-0123456")
	if err := (*p).Update(ctx, "alice", func(u *store.User) error {
		u.PendingTOTP = &store.TOTP{Secret: seed, Algorithm: "SHA1", Digits: 6, Period: 30}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := (*p).UpdateLogin(ctx, "alice", func(u *store.User) error { u.PendingTries++; return nil }); err != nil {
		t.Fatal(err)
	}
	*p = b.Reopen(t, *p)
	u := mustGet(t, *p, "alice")
	if u.TOTP != nil || u.PendingTOTP == nil || !bytes.Equal(u.PendingTOTP.Secret, seed) || u.PendingTries != 1 {
		t.Fatalf("pending enrollment after a restart: %+v", u)
	}
	if err := (*p).Update(ctx, "alice", func(u *store.User) error {
		u.TOTP, u.PendingTOTP, u.PendingTries = u.PendingTOTP, nil, 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	*p = b.Reopen(t, *p)
	if u := mustGet(t, *p, "alice"); u.PendingTOTP != nil || u.TOTP == nil || !bytes.Equal(u.TOTP.Secret, seed) {
		t.Fatalf("activated enrollment after a restart: %+v", u)
	}
}

func testMigrations(t *testing.T, b Backend) {
	if b.Migrated == nil {
		t.Skip("the backend has no older layout")
	}
	ctx := context.Background()
	st, names := b.Migrated(t)
	p := &st
	t.Cleanup(func() { (*p).Close() })
	for _, name := range names {
		if err := st.UpdateLogin(ctx, name, func(u *store.User) error { u.CodeFailures++; return nil }); err != nil {
			t.Fatalf("login update of %s in a migrated store: %v", name, err)
		}
	}
	*p = b.Reopen(t, st)
	for _, name := range names {
		if u := mustGet(t, *p, name); u.CodeFailures == 0 {
			t.Errorf("%s: the update after the migration was lost", name)
		}
	}
}

func testBackupRestore(t *testing.T, b Backend) {
	ctx := context.Background()
	st := *open(t, b)
	for i := range 3 {
		if err := st.Create(ctx, user(fmt.Sprintf("u%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpdateLogin(ctx, "u1", accept(77)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := st.Backup(ctx, &buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup: %d bytes, %v (buffer %d)", n, err, buf.Len())
	}
	r := b.Restore(t, buf.Bytes())
	defer r.Close()
	list, err := r.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("restored: %d users, %v", len(list), err)
	}
	if err := r.UpdateLogin(ctx, "u1", accept(77)); !errors.Is(err, errReused) {
		t.Fatalf("a step accepted before the backup, in the restored copy: %v, want refused", err)
	}
}

func testFullDisk(t *testing.T, b Backend) {
	if b.FullDisk == nil {
		t.Skip("Backend.FullDisk is nil: the backend's storage is not the test's to fill (a database server's disk)")
	}
	ctx := context.Background()
	st := *open(t, b)
	if err := st.Create(ctx, user("keep")); err != nil {
		t.Fatal(err)
	}
	b.FullDisk(t, st, func() {
		big := make([]store.User, 5000)
		for i := range big {
			big[i] = user(fmt.Sprintf("big%05d", i))
		}
		if err := st.Import(ctx, big); err == nil {
			t.Error("an import of 5000 users fit on a full disk")
		}
		mustGet(t, st, "keep")
	})
	list, err := st.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("after the failed import: %d users, %v; want only keep", len(list), err)
	}
	if err := st.UpdateLogin(ctx, "keep", accept(5)); err != nil {
		t.Fatalf("a login once there is room again: %v", err)
	}
}

func testClosed(t *testing.T, b Backend) {
	ctx := context.Background()
	st := b.Open(t)
	if err := st.Create(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Get":         func() error { _, err := st.Get(ctx, "alice"); return err }(),
		"List":        func() error { _, err := st.List(ctx); return err }(),
		"Create":      st.Create(ctx, user("bob")),
		"Update":      st.Update(ctx, "alice", func(*store.User) error { return nil }),
		"UpdateLogin": st.UpdateLogin(ctx, "alice", func(*store.User) error { return nil }),
		"Delete":      st.Delete(ctx, "alice"),
		"Import":      st.Import(ctx, []store.User{user("carol")}),
		"Backup":      func() error { _, err := st.Backup(ctx, &bytes.Buffer{}); return err }(),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s on a closed store: %v, want ErrClosed", name, err)
		}
	}
}
