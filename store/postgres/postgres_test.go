package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	})
}

// TestSharedStates: a State issued through one node is taken through
// another, once.
func TestSharedStates(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	ctx := context.Background()
	var nodes [2]*postgres.DB
	for i := range nodes {
		db, err := postgres.Open(ctx, dsn, postgres.Options{KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	now := time.Now()
	state := []byte("0123456789abcdef")
	if err := nodes[0].PutState(ctx, state, "alice", "vpn", []byte{2, 1, 'x'}, now.Add(time.Minute)); err != nil {
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
	if err := nodes[0].PutState(ctx, expired, "alice", "vpn", nil, now.Add(time.Second)); err != nil {
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
