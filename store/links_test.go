package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func linkHash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func TestEnrollLinksLifecycle(t *testing.T) {
	db, _ := testDB(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := db.GetEnrollLink(ctx, linkHash("a")); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("get on a fresh database: %v, want ErrLinkNotFound", err)
	}
	first := EnrollLink{User: "alice", Created: now, Expires: now.Add(time.Hour)}
	if err := db.PutEnrollLink(ctx, linkHash("a1"), first); err != nil {
		t.Fatal(err)
	}
	if err := db.PutEnrollLink(ctx, linkHash("b1"), EnrollLink{User: "bob", Created: now, Expires: now.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetEnrollLink(ctx, linkHash("a1"))
	if err != nil || got.User != "alice" || !got.Expires.Equal(first.Expires) {
		t.Fatalf("get = %+v, %v", got, err)
	}
	// A new link for alice replaces the old one.
	if err := db.PutEnrollLink(ctx, linkHash("a2"), first); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetEnrollLink(ctx, linkHash("a1")); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("replaced link: %v, want ErrLinkNotFound", err)
	}
	// Update keeps, an error writes nothing, remove deletes.
	if err := db.UpdateEnrollLink(ctx, linkHash("a2"), func(l *EnrollLink) (bool, error) { l.Attempts++; return false, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := db.UpdateEnrollLink(ctx, linkHash("a2"), func(l *EnrollLink) (bool, error) { l.Attempts = 99; return false, boom }); !errors.Is(err, boom) {
		t.Fatalf("update error = %v", err)
	}
	if got, _ := db.GetEnrollLink(ctx, linkHash("a2")); got.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1", got.Attempts)
	}
	links, err := db.ListEnrollLinks(ctx)
	if err != nil || len(links) != 2 {
		t.Fatalf("list = %v, %v", links, err)
	}
	if n, err := db.PruneEnrollLinks(ctx, now); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want bob's expired link", n, err)
	}
	if err := db.UpdateEnrollLink(ctx, linkHash("a2"), func(*EnrollLink) (bool, error) { return true, nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateEnrollLink(ctx, linkHash("a2"), func(*EnrollLink) (bool, error) { return false, nil }); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("update after remove: %v", err)
	}
	if err := db.PutEnrollLink(ctx, []byte("short"), first); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("short hash: %v", err)
	}
}

// Links survive a close and reopen, and a database migrated from schema 2
// has the bucket.
func TestEnrollLinksPersistAndMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "otpgate.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := EnrollLink{User: "carol", Created: time.Now(), Expires: time.Now().Add(time.Hour)}
	if err := db.PutEnrollLink(ctx, linkHash("c"), l); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.GetEnrollLink(ctx, linkHash("c"))
	if err != nil || got.User != l.User || !got.Expires.Equal(l.Expires) {
		t.Fatalf("link after a close and reopen: %+v, %v; want %+v", got, err, l)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb := rawBolt(t, path)
	if err := bdb.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLinks); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("2"))
	}); err != nil {
		t.Fatal(err)
	}
	bdb.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.readTx("test", func(tx *bolt.Tx) error {
		if tx.Bucket(bucketLinks) == nil {
			t.Error("migrated database has no enroll_links bucket")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if v := readSchemaVersion(t, path); v != "3" {
		t.Fatalf("schema_version after migration = %q, want 3", v)
	}
}
