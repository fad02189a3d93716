package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
	"github.com/otpgate/otpgate/store/storetest"
)

// TestConformance runs the suite every backend passes on a PostgreSQL the
// test starts, a fresh database per store.
func TestConformance(t *testing.T) {
	pg := testtool.StartPostgres(t)
	type opened struct{ dsn, key string }
	seen := map[store.Store]opened{}
	var lastKey string // Restore's backup comes from the store opened last
	openAt := func(t *testing.T, o opened) *postgres.DB {
		t.Helper()
		st, err := postgres.Open(context.Background(), o.dsn, postgres.Options{KeyFile: o.key})
		if err != nil {
			t.Fatal(err)
		}
		seen[st], lastKey = o, o.key
		return st
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T) store.Store {
			return openAt(t, opened{pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")})
		},
		Reopen: func(t *testing.T, st store.Store) store.Store {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return openAt(t, seen[st])
		},
		Restore: func(t *testing.T, backup []byte) store.Store {
			st := openAt(t, opened{pg.NewDB(), lastKey})
			if err := st.Restore(context.Background(), bytes.NewReader(backup)); err != nil {
				t.Fatal(err)
			}
			return st
		},
		// Users written at schema 1, the oldest this program migrates,
		// then the database opened at the current schema.
		Migrated: func(t *testing.T) (store.Store, []string) {
			ctx := context.Background()
			o := opened{pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")}
			current := postgres.CurrentSchema()
			postgres.SetSchemaForTest(t, 1)
			old, err := postgres.Open(ctx, o.dsn, postgres.Options{KeyFile: o.key})
			if err != nil {
				t.Fatal(err)
			}
			names := []string{"alice", "bob"}
			for _, name := range names {
				u := store.User{Name: name, Created: time.Now(), TOTP: &store.TOTP{
					Secret: []byte("0123456789abcdefghij"), Algorithm: "SHA1", Digits: 6, Period: 30}}
				if err := old.Create(ctx, u); err != nil {
					t.Fatal(err)
				}
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			postgres.SetSchemaForTest(t, current)
			return openAt(t, o), names
		},
		// FullDisk stays nil (skipped): the disk that would fill is the
		// server's, which a test cannot fill without harming whatever
		// else it serves; a server out of space answers with SQLSTATE
		// class 53, which opErr reports as store.ErrUnavailable.
	})
}

// TestSharedStates: a State issued through one node is taken through
// another, once.
func TestSharedStates(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	ctx := context.Background()
	nodes := openNodes(t, dsn, key, 2)
	now := time.Now()
	limits := store.StateLimits{PerUser: 4, PerClient: 8, Total: 16}
	state := []byte("0123456789abcdef")
	if err := nodes[0].PutState(ctx, state, "alice", "vpn", []byte{2, 1, 'x'}, now.Add(time.Minute), limits); err != nil {
		t.Fatal(err)
	}
	user, client, info, ok, err := nodes[1].TakeState(ctx, state, now)
	if err != nil || !ok || user != "alice" || client != "vpn" || string(info) != "\x02\x01x" {
		t.Fatalf("take on the other node: %q %q %q %v %v", user, client, info, ok, err)
	}
	if _, _, _, ok, err := nodes[0].TakeState(ctx, state, now); ok || err != nil {
		t.Fatalf("second take: ok=%v err=%v, want refused", ok, err)
	}
	expired := []byte("fedcba9876543210")
	if err := nodes[0].PutState(ctx, expired, "alice", "vpn", nil, now.Add(time.Second), limits); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok, _ := nodes[1].TakeState(ctx, expired, now.Add(2*time.Second)); ok {
		t.Fatal("an expired State was taken")
	}
}

// TestKeyAndSchemaChecks: a node with another key file, or an older
// program on a newer schema, refuses to start.
func TestKeyAndSchemaChecks(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, dir := pg.NewDB(), t.TempDir()
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: filepath.Join(dir, "seed.key")})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: filepath.Join(dir, "other.key")}); !errors.Is(err, store.ErrMissingKey) {
		t.Errorf("no key file on a database with a key: %v, want ErrMissingKey", err)
	}
	other := filepath.Join(dir, "other.key")
	if err := os.WriteFile(other, bytes.Repeat([]byte{7}, store.KeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: other}); !errors.Is(err, store.ErrWrongKey) {
		t.Errorf("another key: %v, want ErrWrongKey", err)
	}
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	pg.Psql(name, "UPDATE schema_version SET version = version + 1")
	if _, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: filepath.Join(dir, "seed.key")}); !errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("a newer schema: %v, want ErrNewerSchema", err)
	}
}

// TestMigrationWaitsForOlderNodes: a node of the new version does not
// migrate the schema while a node of the old version is running on the
// database; once that node has stopped it migrates, keeping the users,
// and then an old node refuses to start on the new schema.
func TestMigrationWaitsForOlderNodes(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	dbName := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	ctx := context.Background()
	current := postgres.CurrentSchema()
	if current < 2 {
		t.Fatalf("schema %d: this test needs a migration to run", current)
	}

	t.Run("old node running", func(t *testing.T) {
		postgres.SetSchemaForTest(t, current-1)
		old, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		if err := old.Create(ctx, store.User{Name: "alice", Groups: []string{"vpn"}, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
		postgres.SetSchemaForTest(t, current)
		_, err = postgres.Open(ctx, dsn, postgres.Options{KeyFile: key})
		if !errors.Is(err, postgres.ErrOtherVersionRunning) {
			t.Fatalf("new node under a running old one: %v, want ErrOtherVersionRunning", err)
		}
		if got, want := pg.Psql(dbName, "SELECT version FROM schema_version"), fmt.Sprint(current-1); got != want {
			t.Fatalf("schema after the refused migration: %s, want %s", got, want)
		}
	})

	// The old node has stopped (Close removed it from the nodes table).
	db, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: key})
	if err != nil {
		t.Fatalf("new node once the old one stopped: %v", err)
	}
	defer db.Close()
	if got, want := pg.Psql(dbName, "SELECT version FROM schema_version"), fmt.Sprint(current); got != want {
		t.Fatalf("schema after the migration: %s, want %s", got, want)
	}
	if err := db.Update(ctx, "alice", func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if u, err := db.Get(ctx, "alice"); err != nil || !u.Disabled || len(u.Groups) != 1 {
		t.Fatalf("alice after the migration and an update: %+v %v", u, err)
	}

	postgres.SetSchemaForTest(t, current-1)
	if _, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: key}); !errors.Is(err, store.ErrNewerSchema) {
		t.Fatalf("old node on the new schema: %v, want ErrNewerSchema", err)
	}
}

// TestConcurrentUpdates: writers on two nodes changing one user at once
// lose no change (the compare-and-swap decides again on a changed row).
func TestConcurrentUpdates(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	ctx := context.Background()
	nodes := openNodes(t, dsn, key, 2)
	if err := nodes[0].Create(ctx, store.User{Name: "alice", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for range each {
				errs <- nodes[w%2].Update(ctx, "alice", func(u *store.User) error {
					u.CodeFailures++
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	u, err := nodes[1].Get(ctx, "alice")
	if err != nil || u.CodeFailures != writers*each {
		t.Fatalf("after %d increments on two nodes: %d (%v)", writers*each, u.CodeFailures, err)
	}
}

// TestUpdateKeepsSealedSeed: an update that leaves the seed alone (a
// login's counters) keeps the seed's stored ciphertext, as bbolt does,
// instead of sealing it again; a new seed is sealed anew.
func TestUpdateKeepsSealedSeed(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	ctx := context.Background()
	db := openNodes(t, dsn, key, 1)[0]
	u := store.User{Name: "alice", PasswordHash: "x", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		TOTP: &store.TOTP{Secret: []byte("0123456789abcdefghij"), Algorithm: "SHA1", Digits: 6, Period: 30}}
	if err := db.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	stored := func() []byte {
		t.Helper()
		rec, err := db.StoredRecord(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	before := stored()
	// The sealed seed is where the stored record differs from another
	// encoding of the same user: only the seal's nonce, ciphertext and
	// tag are random.
	codec, err := store.OpenCodec(key, false)
	if err != nil {
		t.Fatal(err)
	}
	again, err := codec.Encode(&u)
	if err != nil || len(again) != len(before) {
		t.Fatalf("another encoding: %d bytes, %v; stored %d", len(again), err, len(before))
	}
	first, last := -1, -1
	for i := range before {
		if before[i] != again[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 || last-first < 32 {
		t.Fatalf("no sealed seed found in the record (differs at %d..%d)", first, last)
	}
	sealed := before[first : last+1]

	if err := db.UpdateLogin(ctx, "alice", func(u *store.User) error {
		u.CodeFailures++
		u.TOTP.LastStep = 99
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if after := stored(); !bytes.Contains(after, sealed) {
		t.Error("a login's update sealed the unchanged seed again")
	}
	if err := db.Update(ctx, "alice", func(u *store.User) error {
		u.TOTP.Secret = []byte("another-seed-0123456")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if after := stored(); bytes.Contains(after, sealed) {
		t.Error("a new seed kept the old seed's ciphertext")
	}
	if got, err := db.Get(ctx, "alice"); err != nil || string(got.TOTP.Secret) != "another-seed-0123456" || got.CodeFailures != 1 {
		t.Fatalf("alice after the updates: %+v %v", got, err)
	}
}

// TestErrorsCarryContext: a record that does not decode names the
// operation and the user; with the server gone, the enrollment links and
// Ping report store.ErrUnavailable like the user methods.
func TestErrorsCarryContext(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	dbName := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	ctx := context.Background()
	db := openNodes(t, dsn, key, 1)[0]
	if err := db.Create(ctx, store.User{Name: "alice", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pg.Psql(dbName, `UPDATE users SET record = '\x02ff' WHERE name = 'alice'`)
	if _, err := db.Get(ctx, "alice"); err == nil || !strings.HasPrefix(err.Error(), `store: get "alice": `) {
		t.Errorf("Get of a damaged record: %v, want it to name the operation and the user", err)
	}
	pg.Kill()
	hash := bytes.Repeat([]byte{1}, store.LinkHashSize)
	for op, err := range map[string]error{
		"Ping":             db.Ping(ctx),
		"GetEnrollLink":    func() error { _, err := db.GetEnrollLink(ctx, hash); return err }(),
		"PutEnrollLink":    db.PutEnrollLink(ctx, hash, store.EnrollLink{User: "alice", Expires: time.Now().Add(time.Hour)}),
		"ListEnrollLinks":  func() error { _, err := db.ListEnrollLinks(ctx); return err }(),
		"PruneEnrollLinks": func() error { _, err := db.PruneEnrollLinks(ctx, time.Now()); return err }(),
		"UpdateEnrollLink": db.UpdateEnrollLink(ctx, hash, func(*store.EnrollLink) (bool, error) { return false, nil }),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server gone: %v, want ErrUnavailable", op, err)
		}
	}
}

// TestRestoreRefusesNonEmpty: Restore fills only a database that holds
// no users, like Load, and writes nothing into one that does.
func TestRestoreRefusesNonEmpty(t *testing.T) {
	pg := testtool.StartPostgres(t)
	key := filepath.Join(t.TempDir(), "seed.key")
	ctx := context.Background()
	src := openNodes(t, pg.NewDB(), key, 1)[0]
	for _, name := range []string{"alice", "bob"} {
		if err := src.Create(ctx, store.User{Name: name, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var backup bytes.Buffer
	if _, err := src.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	dst := openNodes(t, pg.NewDB(), key, 1)[0]
	if err := dst.Create(ctx, store.User{Name: "carol", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(ctx, bytes.NewReader(backup.Bytes())); !errors.Is(err, postgres.ErrNotEmpty) {
		t.Fatalf("Restore into a database with a user: %v, want ErrNotEmpty", err)
	}
	if list, err := dst.List(ctx); err != nil || len(list) != 1 || list[0].Name != "carol" {
		t.Fatalf("after the refused restore: %v %v, want only carol", list, err)
	}
	if err := dst.Delete(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(ctx, bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatalf("Restore into the emptied database: %v", err)
	}
	if list, err := dst.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("restored: %v %v, want alice and bob", list, err)
	}
}
