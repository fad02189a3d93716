package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// holdCommitter makes the committer run a request that blocks until release
// is called, so requests submitted meanwhile queue up and form one batch.
func holdCommitter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.write(func(*bolt.Tx) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	return func() {
		close(gate)
		if err := <-done; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// waitQueued waits until n requests wait for the committer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(db.commit.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(db.commit.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitBatchesQueuedWrites(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	const n = 64
	users := manyUsers(t, "u", n)
	if err := db.Import(ctx, users); err != nil {
		t.Fatal(err)
	}
	release := holdCommitter(t, db)
	txsBefore := db.commit.txs.Load()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.Update(ctx, users[i].Name, func(u *User) error {
				u.TOTP.LastStep = uint64(1000 + i)
				return nil
			})
		})
	}
	waitQueued(t, db, n)
	release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	if txs := db.commit.txs.Load() - txsBefore; txs != 1 {
		t.Errorf("%d transactions for %d queued updates, want 1 (one batch)", txs, n)
	}
	if mb := db.commit.maxBatch.Load(); mb < n {
		t.Errorf("largest batch %d, want >= %d", mb, n)
	}
	db.Close()
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for i, u := range users {
		got, err := db2.Get(ctx, u.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.TOTP.LastStep != uint64(1000+i) {
			t.Fatalf("%s: LastStep %d after reopen, want %d", u.Name, got.TOTP.LastStep, 1000+i)
		}
	}
}

// Updates of one user in one batch see each other's results: none is lost.
func TestGroupCommitSameUserSerialized(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	if err := db.Create(ctx, totpUser("alice", randomSeed(t))); err != nil {
		t.Fatal(err)
	}
	const n = 200
	release := holdCommitter(t, db)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := db.Update(ctx, "alice", func(u *User) error { u.CodeFailures++; return nil }); err != nil {
				t.Errorf("update: %v", err)
			}
		})
	}
	waitQueued(t, db, n)
	release()
	wg.Wait()
	u, err := db.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.CodeFailures != n {
		t.Fatalf("CodeFailures = %d after %d concurrent increments", u.CodeFailures, n)
	}
}

// A failing request in a batch gets its own error and leaves no trace; the
// others in the same batch are committed.
func TestGroupCommitErrorIsolation(t *testing.T) {
	ctx := context.Background()
	db, path := testDB(t)
	if err := db.Import(ctx, manyUsers(t, "u", 10)); err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")
	// Two updates of u000001 in one batch: the second sees the first's
	// write and fails, like a replayed code.
	useOnce := func(u *User) error {
		if u.CodeFailures != 0 {
			return errCodeReused
		}
		u.CodeFailures = 1
		return nil
	}
	ops := []struct {
		name  string
		run   func() error
		want  func(o batchOutcome) error
		early bool // answered before the committer (Update's snapshot)
	}{
		{"good update", func() error {
			return db.Update(ctx, "u000000", func(u *User) error { u.CodeFailures = 7; return nil })
		}, wantNil, false},
		{"first use", func() error { return db.Update(ctx, "u000001", useOnce) }, wantNil, false},
		{"second use, clean fn error in the batch", func() error { return db.Update(ctx, "u000001", useOnce) }, wantIs(errCodeReused), false},
		{"clean fn error", func() error {
			return db.Update(ctx, "u000006", func(u *User) error { u.CodeFailures = 99; return errCodeReused })
		}, wantIs(errCodeReused), true},
		{"dirty write error", func() error {
			return db.write(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put([]byte("junk"), []byte("x")); err != nil {
					return err
				}
				return errBoom
			})
		}, wantIs(errBoom), false},
		{"create existing", func() error { return db.Create(ctx, totpUser("u000002", randomSeed(t))) }, wantIs(ErrUserExists), false},
		{"import with a clash", func() error {
			return db.Import(ctx, []User{totpUser("new1", randomSeed(t)), totpUser("u000003", randomSeed(t))})
		}, wantIs(ErrUserExists), false},
		{"update missing", func() error { return db.Update(ctx, "nobody", func(*User) error { return nil }) }, wantIs(ErrUserNotFound), true},
		{"delete missing", func() error { return db.Delete(ctx, "nobody") }, wantIs(ErrUserNotFound), false},
		{"panic", func() error {
			return db.write(func(tx *bolt.Tx) error {
				tx.Bucket(bucketMeta).Put([]byte("junk2"), []byte("x"))
				panic("fn panicked")
			})
		}, wantPanic, false},
		{"good create", func() error { return db.Create(ctx, totpUser("new2", randomSeed(t))) }, wantNil, false},
		{"good delete", func() error { return db.Delete(ctx, "u000004") }, wantNil, false},
		{"second good update", func() error {
			return db.Update(ctx, "u000005", func(u *User) error { u.CodeFailures = 5; return nil })
		}, wantNil, false},
	}
	release := holdCommitter(t, db)
	results := make([]batchOutcome, len(ops))
	var wg sync.WaitGroup
	queued := 0
	for i, op := range ops {
		if op.early {
			// Decided on Update's snapshot: it must not wait for the
			// held committer.
			done := make(chan error, 1)
			go func() { done <- op.run() }()
			select {
			case err := <-done:
				results[i] = batchOutcome{name: op.name, err: err}
			case <-time.After(10 * time.Second):
				release()
				t.Fatalf("%s waited for the committer", op.name)
			}
			continue
		}
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					results[i] = batchOutcome{name: op.name, pan: p}
				}
			}()
			results[i] = batchOutcome{name: op.name, err: op.run()}
		})
		queued++ // one at a time, so the batch has this order
		waitQueued(t, db, queued)
	}
	release()
	wg.Wait()
	for i, op := range ops {
		if err := op.want(results[i]); err != nil {
			t.Errorf("%s: %v", op.name, err)
		}
	}

	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	get := func(name string) (User, error) { return db.Get(ctx, name) }
	if u, _ := get("u000000"); u.CodeFailures != 7 {
		t.Errorf("good update lost: CodeFailures %d", u.CodeFailures)
	}
	if u, _ := get("u000005"); u.CodeFailures != 5 {
		t.Errorf("second good update lost: CodeFailures %d", u.CodeFailures)
	}
	if u, _ := get("u000001"); u.CodeFailures != 1 {
		t.Errorf("u000001: CodeFailures %d, want 1 (first use written, second refused)", u.CodeFailures)
	}
	if u, _ := get("u000006"); u.CodeFailures != 0 {
		t.Errorf("failed update was written: CodeFailures %d", u.CodeFailures)
	}
	if _, err := get("new2"); err != nil {
		t.Errorf("good create lost: %v", err)
	}
	if _, err := get("new1"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("refused import left user new1 behind: %v", err)
	}
	if _, err := get("u000004"); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("good delete lost: %v", err)
	}
	db.read(func(tx *bolt.Tx) error {
		for _, k := range []string{"junk", "junk2"} {
			if tx.Bucket(bucketMeta).Get([]byte(k)) != nil {
				t.Errorf("the write of a failed request (%s) was committed", k)
			}
		}
		return nil
	})
}

// batchOutcome is what one request of a batch got back.
type batchOutcome struct {
	name string
	err  error
	pan  any
}

func wantNil(o batchOutcome) error {
	if o.pan != nil || o.err != nil {
		return fmt.Errorf("err %v, panic %v; want success", o.err, o.pan)
	}
	return nil
}

func wantIs(target error) func(batchOutcome) error {
	return func(o batchOutcome) error {
		if o.pan != nil || !errors.Is(o.err, target) {
			return fmt.Errorf("err %v, panic %v; want %v", o.err, o.pan, target)
		}
		return nil
	}
}

func wantPanic(o batchOutcome) error {
	if o.pan != "fn panicked" {
		return fmt.Errorf("err %v, panic %v; want the panic re-raised in the caller", o.err, o.pan)
	}
	return nil
}

func TestWriteAfterClose(t *testing.T) {
	ctx := context.Background()
	db, _ := testDB(t)
	db.Close()
	if err := db.Create(ctx, totpUser("late", randomSeed(t))); err == nil {
		t.Fatal("Create after Close succeeded")
	}
}

// TestUpdateSeesBoltChangesAfterItsRead: an Update whose record was read
// from bbolt is decided without reading bbolt again only while no bbolt
// write transaction has ended since (boltGen). Each case changes the user
// in bbolt after the Update read it and before the committer decides it
// (inside fn's first run); the Update must then run fn again on the new
// record, not log its result over it.
func TestUpdateSeesBoltChangesAfterItsRead(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, db *DB)
	}{
		{"recreated by transactions", func(t *testing.T, db *DB) {
			if err := db.Delete(ctx, "u000000"); err != nil {
				t.Fatal(err)
			}
			u := manyUsers(t, "u", 1)[0]
			u.Groups = []string{"changed"}
			if err := db.Create(ctx, u); err != nil {
				t.Fatal(err)
			}
		}},
		{"logged, then checkpointed", func(t *testing.T, db *DB) {
			if err := db.Update(ctx, "u000000", func(u *User) error { u.Groups = []string{"changed"}; return nil }); err != nil {
				t.Fatal(err)
			}
			var sink bytes.Buffer
			if _, err := db.Backup(ctx, &sink); err != nil { // puts the log into bbolt, empties it
				t.Fatal(err)
			}
			if _, ok := db.wal.get("u000000"); ok {
				t.Fatal("the record is still in the log; the case would not test bbolt")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _ := testDB(t)
			if err := db.Import(ctx, manyUsers(t, "u", 1)); err != nil {
				t.Fatal(err)
			}
			runs := 0
			err := db.Update(ctx, "u000000", func(u *User) error {
				runs++
				if runs == 1 {
					tc.change(t, db)
				}
				u.Groups = append(u.Groups, "mine")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			u, err := db.Get(ctx, "u000000")
			if err != nil {
				t.Fatal(err)
			}
			if runs != 2 || !slices.Equal(u.Groups, []string{"changed", "mine"}) {
				t.Fatalf("fn ran %d times, groups %q; want 2 runs and [changed mine]", runs, u.Groups)
			}
		})
	}

	t.Run("no change: bbolt is not read again", func(t *testing.T) {
		db, _ := testDB(t)
		if err := db.Import(ctx, manyUsers(t, "u", 20)); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := db.Update(ctx, fmt.Sprintf("u%06d", i), func(u *User) error { u.TOTP.LastStep = 7; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if n := db.commit.boltReads.Load(); n != 0 {
			t.Fatalf("the committer read bbolt %d times for 20 unchanged records, want 0", n)
		}
	})
}
