package postgres_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

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
