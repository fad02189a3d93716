package store

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateGetUpdateDeleteList(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	seed := randomSeed(t)
	alice := totpUser("alice", seed)

	if err := db.Create(ctx, alice); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := db.Create(ctx, User{Name: "bob", Disabled: true}); err != nil {
		t.Fatalf("Create bob: %v", err)
	}
	got, err := db.Get(ctx, "alice")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(got, alice) {
		t.Fatalf("Get = %+v\nwant %+v", got, alice)
	}
	bob, err := db.Get(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Created.IsZero() || time.Since(bob.Created) > time.Minute {
		t.Errorf("bob.Created = %v, want about now", bob.Created)
	}
	if bob.TOTP != nil {
		t.Errorf("bob.TOTP = %+v, want nil", bob.TOTP)
	}

	err = db.Update(ctx, "alice", func(u *User) error {
		u.TOTP.LastStep = 42
		u.CodeFailures = 2
		u.Groups = append(u.Groups, "admins")
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, _ = db.Get(ctx, "alice")
	if got.TOTP.LastStep != 42 || got.CodeFailures != 2 || !slices.Equal(got.Groups, []string{"vpn", "staff", "admins"}) {
		t.Errorf("after Update: %+v", got)
	}
	if !bytes.Equal(got.TOTP.Secret, seed) {
		t.Errorf("seed changed by Update")
	}

	list, err := db.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if names := userNames(list); !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("List names = %v", names)
	}

	if err := db.Delete(ctx, "alice"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := db.Get(ctx, "alice"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("Get after Delete: %v, want ErrUserNotFound", err)
	}
}

func userNames(us []User) []string {
	var names []string
	for _, u := range us {
		names = append(names, u.Name)
	}
	return names
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, User{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	noop := func(*User) error { return nil }
	tests := []struct {
		name string
		run  func() error
		want []error
		text string // substring of the message
	}{
		{"create existing", func() error { return db.Create(ctx, User{Name: "alice"}) }, []error{ErrUserExists}, `"alice"`},
		{"get missing", func() error { _, err := db.Get(ctx, "nobody"); return err }, []error{ErrUserNotFound}, `store: get "nobody"`},
		{"update missing", func() error { return db.Update(ctx, "nobody", noop) }, []error{ErrUserNotFound}, `"nobody"`},
		{"delete missing", func() error { return db.Delete(ctx, "nobody") }, []error{ErrUserNotFound}, `"nobody"`},
		{"get invalid", func() error { _, err := db.Get(ctx, "-x"); return err }, []error{ErrUserNotFound, ErrInvalidName}, ""},
		{"update invalid", func() error { return db.Update(ctx, "a b", noop) }, []error{ErrUserNotFound, ErrInvalidName}, ""},
		{"delete invalid", func() error { return db.Delete(ctx, "") }, []error{ErrUserNotFound, ErrInvalidName}, ""},
		{"create invalid", func() error { return db.Create(ctx, User{Name: "a/b"}) }, []error{ErrInvalidName}, `"a/b"`},
		{"create empty seed", func() error { return db.Create(ctx, User{Name: "c", TOTP: &TOTP{}}) }, nil, "secret is empty"},
		{"canceled", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			_, err := db.Get(c, "alice")
			return err
		}, []error{context.Canceled}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want errors.Is %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to contain %q", err, tt.text)
			}
		})
	}
}

func TestGetAndListReturnCopies(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	seed := randomSeed(t)
	if err := db.Create(ctx, totpUser("alice", seed)); err != nil {
		t.Fatal(err)
	}
	u, _ := db.Get(ctx, "alice")
	u.Groups[0] = "evil"
	u.RecoveryCodes[0] = "evil"
	u.TOTP.Secret[0] ^= 0xff
	u.TOTP.LastStep = 99
	list, _ := db.List(ctx)
	list[0].Groups[1] = "evil"
	list[0].TOTP.Secret[1] ^= 0xff

	again, _ := db.Get(ctx, "alice")
	want := totpUser("alice", seed)
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("stored user changed through a returned copy: %+v", again)
	}
}

func TestUpdateFnErrorWritesNothing(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, totpUser("alice", randomSeed(t))); err != nil {
		t.Fatal(err)
	}
	myErr := errors.New("refused")
	err := db.Update(ctx, "alice", func(u *User) error {
		u.CodeFailures = 7
		u.TOTP.LastStep = 1000
		return myErr
	})
	if !errors.Is(err, myErr) {
		t.Fatalf("Update err = %v, want %v", err, myErr)
	}
	u, _ := db.Get(ctx, "alice")
	if u.CodeFailures != 0 || u.TOTP.LastStep != 0 {
		t.Fatalf("fn error still wrote: %+v", u)
	}
}

func TestUpdateRefusesBadResults(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	seed := randomSeed(t)
	if err := db.Create(ctx, totpUser("alice", seed)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func(u *User)
		text string
	}{
		{"rename", func(u *User) { u.Name = "mallory" }, "renamed"},
		{"empty secret", func(u *User) { u.TOTP.Secret = nil }, "secret is empty"},
		{"huge secret", func(u *User) { u.TOTP.Secret = make([]byte, 1000) }, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Update(ctx, "alice", func(u *User) error { tt.fn(u); u.CodeFailures = 5; return nil })
			if err == nil || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want one containing %q", err, tt.text)
			}
			u, _ := db.Get(ctx, "alice")
			if u.CodeFailures != 0 || !bytes.Equal(u.TOTP.Secret, seed) {
				t.Fatalf("refused update still wrote: %+v", u)
			}
		})
	}
	if _, err := db.Get(ctx, "mallory"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("rename created a user: %v", err)
	}
}

// TestConcurrentLastStep is the replay rule: many goroutines try to accept
// the same time step; exactly one may win each step.
func TestConcurrentLastStep(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, totpUser("alice", randomSeed(t))); err != nil {
		t.Fatal(err)
	}
	const workers, steps = 16, 5
	for step := uint64(100); step < 100+steps; step++ {
		var wins, reused int
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				err := db.Update(ctx, "alice", func(u *User) error {
					if step <= u.TOTP.LastStep {
						return errCodeReused
					}
					u.TOTP.LastStep = step
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, errCodeReused):
					reused++
				default:
					t.Errorf("Update: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins != 1 || reused != workers-1 {
			t.Fatalf("step %d: %d wins, %d reused; want 1 and %d", step, wins, reused, workers-1)
		}
		u, _ := db.Get(ctx, "alice")
		if u.TOTP.LastStep != step {
			t.Fatalf("LastStep = %d, want %d", u.TOTP.LastStep, step)
		}
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"a", true},
		{"Alice.Smith_2+vpn@example.com", true},
		{"a-b", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"-rf", false},
		{"a b", false},
		{"a/b", false},
		{"a\x00b", false},
		{"ä", false},
		{"a:b", false},
		{"a\nb", false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, not ErrInvalidName", tt.name, err)
		}
	}
}

func TestInvalidNamesRefusedByCreate(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	for _, name := range []string{"", "-x", "a b", strings.Repeat("y", 65), "x\x00"} {
		if err := db.Create(ctx, User{Name: name}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	list, _ := db.List(ctx)
	if len(list) != 0 {
		t.Fatalf("invalid users stored: %v", userNames(list))
	}
}

func TestHashRecoveryCode(t *testing.T) {
	db1, _ := testDB(t)
	db2, _ := testDB(t)
	h := db1.HashRecoveryCode("alice", "abcdabcdabcdabcd")
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 hex digits", h)
	}
	if h != db1.HashRecoveryCode("alice", "abcdabcdabcdabcd") {
		t.Error("not deterministic")
	}
	for _, other := range []string{
		db1.HashRecoveryCode("bob", "abcdabcdabcdabcd"),
		db1.HashRecoveryCode("alice", "abcdabcdabcdabce"),
		db1.HashRecoveryCode("alice\x00abcd", "abcdabcdabcd"),
		db2.HashRecoveryCode("alice", "abcdabcdabcdabcd"),
	} {
		if other == h {
			t.Error("different name, code or key gave the same hash")
		}
	}
	if strings.Contains(h, "abcdabcd") {
		t.Error("hash contains the code")
	}
}

func TestCloseIdempotent(t *testing.T) {
	db, _ := testDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := db.Get(context.Background(), "alice"); err == nil || !strings.HasPrefix(err.Error(), "store: get") {
		t.Fatalf("Get after Close = %v, want a wrapped error", err)
	}
	if err := db.Create(context.Background(), User{Name: "alice"}); err == nil {
		t.Fatal("Create after Close succeeded")
	}
}

// TestPendingTOTP stores, reads back and clears a pending token, and checks
// that a record written without one (an older otpgate) reads as none.
func TestPendingTOTP(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	active, pending := randomSeed(t), randomSeed(t)
	u := totpUser("alice", active)
	if err := db.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, "alice")
	if err != nil || got.PendingTOTP != nil || got.PendingTries != 0 {
		t.Fatalf("record without a pending token: %v, pending %+v", err, got.PendingTOTP)
	}
	begun := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	err = db.Update(ctx, "alice", func(u *User) error {
		u.PendingTOTP = &TOTP{Secret: pending, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: begun}
		u.PendingTries = 2
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = db.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := &TOTP{Secret: pending, Algorithm: "SHA1", Digits: 6, Period: 30, Enrolled: begun}
	if !reflect.DeepEqual(got.PendingTOTP, want) || got.PendingTries != 2 {
		t.Fatalf("pending = %+v, tries %d; want %+v, 2", got.PendingTOTP, got.PendingTries, want)
	}
	if !bytes.Equal(got.TOTP.Secret, active) {
		t.Fatal("storing a pending token changed the active one")
	}
	err = db.Update(ctx, "alice", func(u *User) error { u.PendingTOTP = &TOTP{}; return nil })
	if err == nil || !strings.Contains(err.Error(), "pending totp secret is empty") {
		t.Errorf("empty pending secret: %v", err)
	}
	err = db.Update(ctx, "alice", func(u *User) error { u.PendingTOTP, u.PendingTries = nil, 0; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ = db.Get(ctx, "alice"); got.PendingTOTP != nil {
		t.Errorf("pending token not cleared: %+v", got.PendingTOTP)
	}
}
