// Package postgres is the store backend for several otpgated nodes: users,
// enrollment links, challenge States and the password backoff live in one
// PostgreSQL database that every node reads and writes, so a code
// accepted on one node is refused on every other. A change to a user is
// a read and a conditional write (a compare-and-swap on the row's
// revision), committed with synchronous_commit on before the call
// returns; the password backoff is written the same way (backoff.go).
// The reads and writes of the logins under way on a node go out together,
// a statement for many (batch.go). Seeds are sealed with the node's key
// file through store.Codec, exactly as in bbolt; the key stays outside
// the database, which holds only a check value that proves a node's key
// is the right one.
package postgres

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/otpgate/otpgate/store"
)

// Options configures Open.
type Options struct {
	// KeyFile holds the seed key (store.KeySize bytes, mode 0600); the same
	// file on every node. Created only when the database is new.
	KeyFile string
	// Log receives what no caller waits for. Nil: discarded.
	Log *slog.Logger
	// MaxConns bounds the pool; 0: the DSN's pool_max_conns, else
	// defaultPoolSize.
	MaxConns int32
}

// opTimeout bounds one operation whose caller set no deadline
// (opContext): about what a NAS waits for an answer.
const opTimeout = 4 * time.Second

// defaultPoolSize is how many connections a node opens at most, unless
// the DSN says pool_max_conns.
const defaultPoolSize int32 = 16

// DB is a store.Store on PostgreSQL.
type DB struct {
	pool     *pgxpool.Pool
	codec    *store.Codec
	log      *slog.Logger
	closed   atomic.Bool
	node     string        // this process in the nodes table
	schema   int           // the schema version this node reads and writes
	gathered *gathered     // Update's first round, with the others under way
	stop     chan struct{} // closed by Close: ends the heartbeat
	done     chan struct{}
}

var (
	_ store.Store       = (*DB)(nil)
	_ store.EnrollLinks = (*DB)(nil)
)

// Open connects to dsn, checks the key against the database and migrates
// the schema (one node at a time). A multi-host dsn with
// target_session_attrs=read-write follows a promoted standby.
func Open(ctx context.Context, dsn string, opt Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: parse dsn: %w", errors.New(redact(err.Error())))
	}
	// An Accept leaves only after its write is durable: whatever the
	// server's default, this node's transactions wait for the WAL flush
	// (and for a synchronous standby if the server has one).
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "otpgated"
	switch {
	case opt.MaxConns > 0:
		cfg.MaxConns = opt.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = defaultPoolSize
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	}
	// A dead connection is found by the next query that fails; this
	// finds the ones a restart cut while idle.
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{pool: pool, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if err := db.init(ctx, opt.KeyFile); err != nil {
		pool.Close()
		return nil, err
	}
	db.gathered = newGathered(db)
	go db.heartbeat()
	return db, nil
}

// redact drops a password from a connection string in an error message.
func redact(s string) string {
	if i := strings.Index(s, "password="); i >= 0 {
		return s[:i] + "password=xxx"
	}
	return s
}

// Ping reports whether the database can take a write now (a primary
// answers): the node can decide a login.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.usable("ping"); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var ro string
	if err := db.pool.QueryRow(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
		return opErr("ping", "", err)
	}
	if ro == "on" {
		return fmt.Errorf("store: ping: %w: connected to a read-only server (a standby)", store.ErrUnavailable)
	}
	return nil
}

// opContext bounds one operation whose caller set no deadline: a
// database that stops answering (a partition) must not hold a login
// longer than a NAS waits.
func (db *DB) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}

func (db *DB) usable(op string) error {
	if db.closed.Load() {
		return fmt.Errorf("store: %s: %w", op, store.ErrClosed)
	}
	return nil
}

func opErr(op, name string, err error) error {
	if unavailable(err) {
		err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if name != "" {
		return fmt.Errorf("store: %s %q: %w", op, name, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// Get implements store.Store.
func (db *DB) Get(ctx context.Context, name string) (store.User, error) {
	if err := db.usable("get"); err != nil {
		return store.User{}, err
	}
	if err := store.LookupName("get", name); err != nil {
		return store.User{}, err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var rec []byte
	err := db.pool.QueryRow(ctx, "SELECT record FROM users WHERE name = $1", name).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, opErr("get", name, store.ErrUserNotFound)
	}
	if err != nil {
		return store.User{}, opErr("get", name, err)
	}
	u, err := db.codec.Decode(name, rec)
	if err != nil {
		return store.User{}, opErr("get", name, err)
	}
	return u, nil
}

// List implements store.Store (sorted by name).
func (db *DB) List(ctx context.Context) ([]store.User, error) {
	if err := db.usable("list"); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, "SELECT name, record FROM users ORDER BY name COLLATE \"C\"")
	if err != nil {
		return nil, opErr("list", "", err)
	}
	defer rows.Close()
	users := []store.User{}
	for rows.Next() {
		var name string
		var rec []byte
		if err := rows.Scan(&name, &rec); err != nil {
			return nil, opErr("list", "", err)
		}
		u, err := db.codec.Decode(name, rec)
		if err != nil {
			return nil, opErr("list", name, err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, opErr("list", "", err)
	}
	return users, nil
}

// unavailable reports whether err means the database could not be used
// (as opposed to an answer from it): no connection, a connection cut, a
// server shutting down or starting, or a standby that refuses writes.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrUserNotFound) ||
		errors.Is(err, store.ErrUserExists) || errors.Is(err, store.ErrInvalidName) || errors.Is(err, store.ErrClosed) ||
		errors.Is(err, store.ErrLinkNotFound) ||
		errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") ||
			strings.HasPrefix(pe.Code, "53") || pe.Code == "25006" // read_only_sql_transaction
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isNetErr(err)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "connection reset")
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Create implements store.Store.
func (db *DB) Create(ctx context.Context, u store.User) error {
	if err := db.usable("create"); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	rec, err := db.codec.Encode(&u)
	if err != nil {
		return opErr("create", u.Name, err)
	}
	_, err = db.pool.Exec(ctx, "INSERT INTO users (name, record) VALUES ($1, $2)", u.Name, rec)
	if isUniqueViolation(err) {
		return opErr("create", u.Name, store.ErrUserExists)
	}
	if err != nil {
		return opErr("create", u.Name, err)
	}
	return nil
}

// Rounds of a compare-and-swap write (casWrite). A round is lost only to
// another writer of the same row, on any node, between its read and its
// write, so one or two rounds are the rule. Under a pile of writers on
// one row (a flood of guesses at one user from every node) a writer
// could lose round after round, and a real login with it: after casTries
// it takes the row lock, which the others' compare-and-swap waits for.
const (
	casTries    = 4
	lockedTries = 4 // a locked round is lost only when the row appears or goes meanwhile
)

// errContended: every round of a casWrite was lost.
var errContended = fmt.Errorf("the row changed under every one of %d tries", casTries+lockedTries)

// querier is what one round needs: the pool, or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// casWrite runs round (read a row, decide, write it only if it is still
// as read) until a round reports done: casTries rounds on the pool, each
// its own statements, apart by a random wait so that the writers of one
// row do not collide again; then rounds in a transaction that reads
// with lock = " FOR UPDATE". An error from round ends it and is returned
// as it is.
func (db *DB) casWrite(ctx context.Context, round func(q querier, lock string) (done bool, err error)) error {
	for try := range casTries {
		if try > 0 {
			t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Millisecond) << try)))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if done, err := round(db.pool, ""); err != nil || done {
			return err
		}
	}
	for range lockedTries {
		var done bool
		var roundErr error
		err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			done, roundErr = round(tx, " FOR UPDATE")
			return roundErr
		})
		if roundErr != nil {
			return roundErr
		}
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if done {
			return nil
		}
	}
	return errContended
}

// Update implements store.Store as a compare-and-swap (casWrite): read
// the record and its revision, run fn, and write only if the revision is
// still the one read (UPDATE ... WHERE revision = $read); if another
// writer, on any node, got there first, read again and run fn again on
// the new record. So fn always decides on the record its write replaces,
// no row lock is held across the round trips, and the write is committed
// (synchronous_commit on) before Update returns. The first round's read
// and write go out gathered with the other logins under way on this node
// (batch.go); fn that returns an error writes nothing.
func (db *DB) Update(ctx context.Context, name string, fn func(u *store.User) error) error {
	if err := db.usable("update"); err != nil {
		return err
	}
	if err := store.LookupName("update", name); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var fnErr error
	first := true
	err := db.casWrite(ctx, func(q querier, lock string) (bool, error) {
		var rows userRows = direct{q, lock}
		if first {
			// The common case, one round, goes out with the other
			// logins under way on this node.
			rows, first = db.gathered, false
		}
		return db.updateOnce(ctx, rows, name, func(u *store.User) error {
			fnErr = fn(u)
			return fnErr
		})
	})
	switch {
	case fnErr != nil:
		return fnErr // as fn returned it
	case err != nil:
		return opErr("update", name, err)
	}
	return nil
}

// updateOnce is one round of Update: it reads name, runs fn on it
// (store.Codec.Apply, as bbolt does: an unchanged seed keeps its
// ciphertext) and writes the result if the row's revision is unchanged. written is false when
// another writer changed the row first.
func (db *DB) updateOnce(ctx context.Context, rows userRows, name string, fn func(u *store.User) error) (written bool, err error) {
	rec, rev, err := rows.read(ctx, name)
	if err != nil {
		return false, err
	}
	out, err := db.codec.Apply(name, rec, fn)
	if err != nil {
		return false, err
	}
	return rows.write(ctx, name, out, rev)
}

// UpdateLogin implements store.Store. On PostgreSQL it is Update: every
// write is committed durably before the call returns, which is stronger
// than the bbolt contract.
func (db *DB) UpdateLogin(ctx context.Context, name string, fn func(u *store.User) error) error {
	return db.Update(ctx, name, fn)
}

// Delete implements store.Store.
func (db *DB) Delete(ctx context.Context, name string) error {
	if err := db.usable("delete"); err != nil {
		return err
	}
	if err := store.LookupName("delete", name); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	tag, err := db.pool.Exec(ctx, "DELETE FROM users WHERE name = $1", name)
	if err != nil {
		return opErr("delete", name, err)
	}
	if tag.RowsAffected() == 0 {
		return opErr("delete", name, store.ErrUserNotFound)
	}
	return nil
}

// Import implements store.Store: one transaction, rows sent with COPY.
func (db *DB) Import(ctx context.Context, users []store.User) error {
	if err := db.usable("import"); err != nil {
		return err
	}
	rows := make([][]any, 0, len(users))
	for i := range users {
		rec, err := db.codec.Encode(&users[i])
		if err != nil {
			return opErr("import", users[i].Name, err)
		}
		rows = append(rows, []any{users[i].Name, rec})
	}
	return db.copyIn(ctx, "import", rows)
}

func (db *DB) copyIn(ctx context.Context, op string, rows [][]any) error {
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"name", "record"}, pgx.CopyFromRows(rows))
		return err
	})
	if isUniqueViolation(err) {
		return opErr(op, "", store.ErrUserExists)
	}
	if err != nil {
		return opErr(op, "", err)
	}
	return nil
}

// backupMagic starts a backup: a line per user follows, name TAB record
// (base64), then the links.
const backupMagic = "otpgate-postgres-backup 1"

// Backup implements store.Store: a consistent snapshot (one REPEATABLE
// READ transaction) of users and enrollment links, as text; Restore
// reads it.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := db.usable("backup"); err != nil {
		return 0, err
	}
	cw := &countWriter{w: bufio.NewWriter(w)}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		fmt.Fprintf(cw, "%s\nkey_check %s\n", backupMagic, hex.EncodeToString(db.codec.KeyCheck()))
		rows, err := tx.Query(ctx, "SELECT name, record FROM users ORDER BY name")
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var rec []byte
			if err := rows.Scan(&name, &rec); err != nil {
				return err
			}
			fmt.Fprintf(cw, "user %s %s\n", name, base64.StdEncoding.EncodeToString(rec))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, "SELECT hash, data FROM enroll_links")
		if err != nil {
			return err
		}
		for rows.Next() {
			var hash, data []byte
			if err := rows.Scan(&hash, &data); err != nil {
				return err
			}
			fmt.Fprintf(cw, "link %s %s\n", hex.EncodeToString(hash), base64.StdEncoding.EncodeToString(data))
		}
		return rows.Err()
	})
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if err == nil {
		err = cw.err
	}
	if err != nil {
		return cw.n, opErr("backup", "", err)
	}
	return cw.n, nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Restore loads what Backup wrote into this database in one transaction
// (Load): a database that holds users or enrollment links is refused
// with ErrNotEmpty. The backup's key check must match this node's key.
func (db *DB) Restore(ctx context.Context, r io.Reader) error {
	if err := db.usable("restore"); err != nil {
		return err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	if !sc.Scan() || sc.Text() != backupMagic {
		return errors.New("store: restore: not an otpgate PostgreSQL backup")
	}
	type storedUser struct {
		name string
		rec  []byte
	}
	type storedLink struct{ hash, data []byte }
	var users []storedUser
	var links []storedLink
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		a, b, _ := strings.Cut(rest, " ")
		switch kind {
		case "key_check":
			check, err := hex.DecodeString(a)
			if err != nil || !db.codec.Matches(check) {
				return fmt.Errorf("store: restore: %w: the backup was sealed with another key", store.ErrWrongKey)
			}
		case "user":
			rec, err := base64.StdEncoding.DecodeString(b)
			if err != nil {
				return fmt.Errorf("store: restore: user %q: %w", a, err)
			}
			if _, err := db.codec.Decode(a, rec); err != nil {
				return fmt.Errorf("store: restore: %w", err)
			}
			users = append(users, storedUser{a, rec})
		case "link":
			hash, err1 := hex.DecodeString(a)
			data, err2 := base64.StdEncoding.DecodeString(b)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("store: restore: link: %w", err)
			}
			links = append(links, storedLink{hash, data})
		default:
			return fmt.Errorf("store: restore: unknown line %q", kind)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	// Load checks, in the transaction that fills it, that the database
	// holds no users and no links (ErrNotEmpty).
	_, err := db.Load(ctx, false, func(l *Loader) error {
		for _, u := range users {
			if err := l.addRecord(u.name, u.rec); err != nil {
				return err
			}
		}
		for _, k := range links {
			if err := l.addLinkData(k.hash, k.data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	return nil
}

// HashRecoveryCode implements store.Store.
func (db *DB) HashRecoveryCode(name, code string) string {
	return db.codec.HashRecoveryCode(name, code)
}

// Close implements store.Store; a second Close does nothing.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	close(db.stop)
	<-db.done
	db.pool.Close()
	return nil
}
