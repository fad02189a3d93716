package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func manyUsers(_ testing.TB, prefix string, n int) []User {
	users := make([]User, n)
	for i := range users {
		users[i] = User{
			Name: fmt.Sprintf("%s%06d", prefix, i),
			TOTP: &TOTP{Secret: newSeed(), Algorithm: "SHA1", Digits: 6, Period: 30},
		}
	}
	return users
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, User{Name: "m-existing"}); err != nil {
		t.Fatal(err)
	}
	users := manyUsers(t, "u", 500)
	// Out of order input, and names before and after the existing one.
	slices.Reverse(users)
	users = append(users, User{Name: "a-first"}, User{Name: "z-last", Created: time.Unix(1e9, 0).UTC()})
	if err := db.Import(ctx, users); err != nil {
		t.Fatalf("Import: %v", err)
	}
	list, err := db.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(users)+1 {
		t.Fatalf("List has %d users, want %d", len(list), len(users)+1)
	}
	if !slices.IsSortedFunc(list, func(a, b User) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("List not sorted by name")
	}
	for _, u := range users {
		got, err := db.Get(ctx, u.Name)
		if err != nil {
			t.Fatal(err)
		}
		if u.TOTP != nil && !bytes.Equal(got.TOTP.Secret, u.TOTP.Secret) {
			t.Fatalf("%s: seed differs", u.Name)
		}
		if u.Created.IsZero() && got.Created.IsZero() || !u.Created.IsZero() && !got.Created.Equal(u.Created) {
			t.Fatalf("%s: Created = %v", u.Name, got.Created)
		}
	}
	if err := db.Import(ctx, nil); err != nil {
		t.Fatalf("empty Import: %v", err)
	}
}

func TestImportAllOrNothing(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		batch func(t *testing.T) []User
		want  error
		text  string
	}{
		{"exists", func(t *testing.T) []User { return append(manyUsers(t, "n", 100), User{Name: "old"}) }, ErrUserExists, `"old"`},
		{"twice in batch", func(t *testing.T) []User { return append(manyUsers(t, "n", 100), User{Name: "n000042"}) }, ErrUserExists, `"n000042" appears more than once`},
		{"invalid name", func(t *testing.T) []User { return append(manyUsers(t, "n", 100), User{Name: "bad name"}) }, ErrInvalidName, `"bad name"`},
		{"empty seed", func(t *testing.T) []User { return append(manyUsers(t, "n", 100), User{Name: "s", TOTP: &TOTP{}}) }, nil, `"s": totp secret is empty`},
		{"canceled", func(t *testing.T) []User { return manyUsers(t, "n", 100) }, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := testDB(t)
			if err := db.Create(ctx, User{Name: "old"}); err != nil {
				t.Fatal(err)
			}
			c := ctx
			if tt.want == context.Canceled {
				cc, cancel := context.WithCancel(ctx)
				cancel()
				c = cc
			}
			err := db.Import(c, tt.batch(t))
			if err == nil {
				t.Fatal("Import succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to contain %q", err, tt.text)
			}
			list, _ := db.List(ctx)
			if names := userNames(list); !slices.Equal(names, []string{"old"}) {
				t.Fatalf("failed Import left %d users", len(names))
			}
		})
	}
}

// TestImport100k checks the speed promise: 100,000 OTP users with seeds in
// well under a minute (BenchmarkImport100k reports the figure).
func TestImport100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	db, _ := testDB(t)
	users := manyUsers(t, "user", 100_000)
	start := time.Now()
	if err := db.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("imported 100,000 users in %v", took)
	if took > 30*time.Second {
		t.Fatalf("import of 100k users took %v, want well under a minute", took)
	}
	u, err := db.Get(ctx, "user099999")
	if err != nil || !bytes.Equal(u.TOTP.Secret, users[99999].TOTP.Secret) {
		t.Fatalf("last user: %v", err)
	}
}

func TestBackupRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	users := append(manyUsers(t, "b", 50), totpUser("alice", randomSeed(t)))
	if err := db.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	before, _ := db.List(ctx)
	var buf bytes.Buffer
	n, err := db.Backup(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup returned %d, wrote %d", n, buf.Len())
	}
	// Change the live database after the backup: the copy must not see it.
	db.Delete(ctx, "alice")

	dir := t.TempDir()
	restored := filepath.Join(dir, "restored.db")
	if err := os.WriteFile(restored, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(filepath.Dir(path), DefaultKeyFileName)
	db2, err := Open(restored, Options{KeyFile: keyFile})
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer db2.Close()
	after, err := db2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatal("backup differs from the database")
	}
	if db2.HashRecoveryCode("alice", "x") != db.HashRecoveryCode("alice", "x") {
		t.Fatal("recovery-code hashes differ after restore")
	}
	// The backup without its key is refused, not re-keyed.
	restored2 := filepath.Join(t.TempDir(), "r.db")
	os.WriteFile(restored2, buf.Bytes(), 0o600)
	if _, err := Open(restored2, Options{}); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("backup without key: %v, want ErrMissingKey", err)
	}
}

func TestBackupWriterError(t *testing.T) {
	db, _ := testDB(t)
	_, err := db.Backup(context.Background(), failWriter{})
	if err == nil || !strings.Contains(err.Error(), "store: backup") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Backup to a failing writer: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
