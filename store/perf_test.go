package store

import (
	"bytes"
	"context"
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// storedRecord returns the raw record of user name.
func storedRecord(t *testing.T, db *DB, name string) record {
	t.Helper()
	return parseStored(t, storedValue(t, db, name))
}

// TestUpdateKeepsSealedSeedUnlessChanged: an Update that leaves a seed's
// bytes alone keeps its stored ciphertext; one that replaces the seed, or
// changes its bytes in place, seals the new bytes, which read back.
func TestUpdateKeepsSealedSeedUnlessChanged(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	u := totpUser("alice", randomSeed(t))
	u.PendingTOTP = &TOTP{Secret: randomSeed(t), Digits: 6}
	if err := db.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	r0 := storedRecord(t, db, "alice")

	if err := db.Update(ctx, "alice", func(u *User) error { u.TOTP.LastStep = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	r1 := storedRecord(t, db, "alice")
	if !bytes.Equal(r1.SealedSeed, r0.SealedSeed) || !bytes.Equal(r1.SealedPendingSeed, r0.SealedPendingSeed) {
		t.Error("unchanged seeds were sealed again")
	}

	cases := []struct {
		name   string
		change func(u *User) []byte // returns the new active seed
	}{
		{"replaced", func(u *User) []byte { u.TOTP.Secret = randomSeed(t); return u.TOTP.Secret }},
		{"changed in place", func(u *User) []byte { u.TOTP.Secret[0] ^= 0xff; return bytes.Clone(u.TOTP.Secret) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := storedRecord(t, db, "alice")
			var want []byte
			if err := db.Update(ctx, "alice", func(u *User) error { want = c.change(u); return nil }); err != nil {
				t.Fatal(err)
			}
			after := storedRecord(t, db, "alice")
			if bytes.Equal(after.SealedSeed, before.SealedSeed) {
				t.Error("a changed seed kept its old ciphertext")
			}
			if !bytes.Equal(after.SealedPendingSeed, before.SealedPendingSeed) {
				t.Error("the unchanged pending seed was sealed again")
			}
			got, err := db.Get(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.TOTP.Secret, want) {
				t.Error("the changed seed does not read back")
			}
		})
	}
}

// TestFailedUpdateCommitsNothing: an Update whose function fails, or whose
// user is unknown, is rolled back (no commit, no fsync): the database
// transaction id does not move, and each caller gets its own error.
func TestFailedUpdateCommitsNothing(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, totpUser("alice", randomSeed(t))); err != nil {
		t.Fatal(err)
	}
	txid := func() int {
		var id int
		db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	errMine := errors.New("mine")
	if err := db.Update(ctx, "alice", func(*User) error { return errMine }); !errors.Is(err, errMine) {
		t.Fatalf("Update: %v, want errMine", err)
	}
	if err := db.Update(ctx, "nobody", func(*User) error { return nil }); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("Update of unknown user: %v", err)
	}
	if after := txid(); after != before {
		t.Errorf("transaction id moved from %d to %d: failed requests were committed", before, after)
	}
	// The check can fail: a write transaction moves the id.
	if err := db.Create(ctx, User{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	if after := txid(); after != before+1 {
		t.Errorf("transaction id %d after a write, want %d", after, before+1)
	}
}
