package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

var _ auth.PasswordBackoffStore = (*postgres.DB)(nil)

// counter is a backoff value for these tests: a count of failures.
func counter(b []byte) uint64 {
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func counterBytes(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// openNodes opens n handles on one database, as n nodes would.
func openNodes(t *testing.T, dsn, key string, n int) []*postgres.DB {
	t.Helper()
	nodes := make([]*postgres.DB, n)
	for i := range nodes {
		db, err := postgres.Open(context.Background(), dsn, postgres.Options{KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		nodes[i] = db
	}
	return nodes
}

// TestSharedPasswordBackoff: what one node writes the other reads;
// failures settled at once from both nodes are all counted; an unchanged
// value is not written, a nil one is deleted; rows past their forget time
// are swept; and with PostgreSQL down the error says unavailable.
func TestSharedPasswordBackoff(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn := pg.NewDB()
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	nodes := openNodes(t, dsn, filepath.Join(t.TempDir(), "seed.key"), 2)
	ctx := context.Background()
	forget := time.Now().Add(time.Hour)
	read := func(node int, user string) uint64 {
		t.Helper()
		var got uint64
		err := nodes[node].UpdatePasswordBackoff(ctx, user, func(old []byte) ([]byte, time.Time, error) {
			got = counter(old)
			return old, forget, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	add := func(node int, user string) (runs int, err error) {
		err = nodes[node].UpdatePasswordBackoff(ctx, user, func(old []byte) ([]byte, time.Time, error) {
			runs++
			return counterBytes(counter(old) + 1), forget, nil
		})
		return runs, err
	}

	if _, err := add(0, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := read(1, "alice"); got != 1 {
		t.Fatalf("node 2 reads %d failures node 1 wrote, want 1", got)
	}
	// Any bytes are a name: a guesser's, not only valid user names.
	odd := "\x00\xff not a user\n"
	if _, err := add(1, odd); err != nil {
		t.Fatalf("a name with NUL and invalid UTF-8: %v", err)
	}
	if got := read(0, odd); got != 1 {
		t.Fatalf("odd name: %d, want 1", got)
	}

	// 2 nodes x 8 goroutines x 25 failures of one user at once.
	const perWorker = 25
	var wg sync.WaitGroup
	var runs, fails atomic.Int64
	for node := range nodes {
		for range 8 {
			wg.Go(func() {
				for range perWorker {
					n, err := add(node, "alice")
					runs.Add(int64(n))
					if err != nil {
						fails.Add(1)
						t.Errorf("node %d: %v", node+1, err)
					}
				}
			})
		}
	}
	wg.Wait()
	want := uint64(1 + 2*8*perWorker)
	if got := read(0, "alice"); got != want {
		t.Fatalf("after %d concurrent failures from two nodes: %d counted, want %d", 2*8*perWorker, got, want)
	}
	t.Logf("%d failures settled in %d runs of fn (%d refused)", 2*8*perWorker, runs.Load(), fails.Load())

	// An unchanged value is not written: the version stays.
	version := func() string {
		return pg.Psql(name, "SELECT version FROM password_backoff WHERE user_name = 'alice'::bytea")
	}
	before := version()
	read(1, "alice")
	if after := version(); after != before || before == "" {
		t.Fatalf("version %q before an unchanged update, %q after", before, after)
	}
	// fn's error comes back as it is; nothing is written.
	errFn := errors.New("fn failed")
	if err := nodes[0].UpdatePasswordBackoff(ctx, "alice", func([]byte) ([]byte, time.Time, error) {
		return nil, time.Time{}, errFn
	}); !errors.Is(err, errFn) {
		t.Fatalf("fn's error: %v", err)
	}
	// A nil value deletes the row.
	if err := nodes[1].UpdatePasswordBackoff(ctx, "alice", func([]byte) ([]byte, time.Time, error) {
		return nil, time.Time{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := read(0, "alice"); got != 0 {
		t.Fatalf("after a nil value: %d, want no row", got)
	}

	// The sweep drops what is past its forget time, and only that.
	for user, at := range map[string]time.Time{"quiet": time.Now().Add(-2 * time.Minute), "recent": time.Now().Add(time.Hour)} {
		if err := nodes[0].UpdatePasswordBackoff(ctx, user, func([]byte) ([]byte, time.Time, error) {
			return counterBytes(3), at, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := nodes[1].SweepPasswordBackoff(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d rows, %v; want 1", n, err)
	}
	if read(0, "quiet") != 0 || read(0, "recent") != 3 {
		t.Fatal("the sweep took the wrong row")
	}

	// PostgreSQL down: an error that says unavailable, and fn never ran.
	pg.Stop()
	ran := false
	err := nodes[0].UpdatePasswordBackoff(ctx, "alice", func(old []byte) ([]byte, time.Time, error) {
		ran = true
		return counterBytes(1), forget, nil
	})
	if !errors.Is(err, store.ErrUnavailable) || ran {
		t.Fatalf("with PostgreSQL down: %v (fn ran: %v), want store.ErrUnavailable", err, ran)
	}
}

// TestPasswordBackoffMigration: a database made by an early build, with a
// password_backoff table of another shape that nothing used, is migrated
// to the new table, and through every migration after it.
func TestPasswordBackoffMigration(t *testing.T) {
	pg := testtool.StartPostgres(t)
	dsn := pg.NewDB()
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	key := filepath.Join(t.TempDir(), "seed.key")
	// migrations[2] (2 -> 3) makes password_backoff; migrations are only
	// ever appended, so a database of schema 2 is the one before it.
	const beforeBackoff = 2
	current := postgres.CurrentSchema()
	postgres.SetSchemaForTest(t, beforeBackoff)
	openNodes(t, dsn, key, 1)[0].Close()
	pg.Psql(name, `CREATE TABLE password_backoff (user_name text NOT NULL, station text NOT NULL, failures integer NOT NULL,
			locked_until timestamptz NOT NULL, last_failure timestamptz NOT NULL, PRIMARY KEY (user_name, station))`)
	postgres.SetSchemaForTest(t, current)
	db, err := postgres.Open(context.Background(), dsn, postgres.Options{KeyFile: key})
	if err != nil {
		t.Fatalf("migrating schema %d with the early table: %v", beforeBackoff, err)
	}
	defer db.Close()
	if got, want := pg.Psql(name, "SELECT version FROM schema_version"), fmt.Sprint(current); got != want {
		t.Fatalf("schema after the migration: %s, want %s", got, want)
	}
	if err := db.UpdatePasswordBackoff(context.Background(), "alice", func([]byte) ([]byte, time.Time, error) {
		return counterBytes(1), time.Now().Add(time.Hour), nil
	}); err != nil {
		t.Fatal(err)
	}
	if cols := pg.Psql(name, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'password_backoff' AND column_name = 'station'"); cols != "0" {
		t.Fatalf("the early table's station column is still there (%s)", cols)
	}
}
