package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/otpgate/otpgate/store"
)

// ErrNotEmpty: Load was asked to fill a database that holds users or
// enrollment links, without leave to replace them.
var ErrNotEmpty = errors.New("store: postgres: the database is not empty")

// loadBatch is how many users Load buffers before it sends them with COPY.
const loadBatch = 5000

// LiveNodes names the processes other than this one that have written
// their heartbeat recently: otpgated nodes (and otpgate commands) running
// on the database now.
func (db *DB) LiveNodes(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, "SELECT node FROM nodes WHERE seen > now() - $1::interval AND node <> $2 ORDER BY node",
		nodeAlive.String(), db.node)
	if err != nil {
		return nil, opErr("live nodes", "", err)
	}
	nodes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, opErr("live nodes", "", err)
	}
	return nodes, nil
}

// ForEach calls fn for every user in name order, from one consistent
// snapshot (a REPEATABLE READ transaction), streaming the rows: for
// copying a large store elsewhere. An error from fn stops the walk and
// comes back as is.
func (db *DB) ForEach(ctx context.Context, fn func(u store.User) error) error {
	if err := db.usable("for each"); err != nil {
		return err
	}
	var fnErr error
	err := db.snapshotTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT name, record FROM users ORDER BY name COLLATE \"C\"")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var rec []byte
			if err := rows.Scan(&name, &rec); err != nil {
				return err
			}
			u, err := db.codec.Decode(name, rec)
			if err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
			if fnErr = fn(u); fnErr != nil {
				return fnErr
			}
		}
		return rows.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return opErr("for each", "", err)
	}
	return nil
}

// ForEachEnrollLink calls fn for every stored enrollment link with its
// hash (expired ones too).
func (db *DB) ForEachEnrollLink(ctx context.Context, fn func(l store.HashedEnrollLink) error) error {
	if err := db.usable("for each enrollment link"); err != nil {
		return err
	}
	var fnErr error
	err := db.snapshotTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT hash, data FROM enroll_links ORDER BY hash")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var hash, data []byte
			if err := rows.Scan(&hash, &data); err != nil {
				return err
			}
			l, err := store.DecodeEnrollLink(data)
			if err != nil {
				return err
			}
			if fnErr = fn(store.HashedEnrollLink{Hash: hash, Link: l}); fnErr != nil {
				return fnErr
			}
		}
		return rows.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return opErr("for each enrollment link", "", err)
	}
	return nil
}

func (db *DB) snapshotTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

// Loader adds users and enrollment links inside Load's transaction.
type Loader struct {
	ctx   context.Context
	db    *DB
	tx    pgx.Tx
	batch [][]any
	users int
}

// AddUser adds u (seeds sealed with this database's key); users go to
// the server in batches, with COPY.
func (l *Loader) AddUser(u store.User) error {
	rec, err := l.db.codec.Encode(&u)
	if err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	return l.addRecord(u.Name, rec)
}

// addRecord adds a user's record as it is stored (Restore: a backup's
// records, already sealed with this database's key).
func (l *Loader) addRecord(name string, rec []byte) error {
	l.batch = append(l.batch, []any{name, rec})
	l.users++
	if len(l.batch) >= loadBatch {
		return l.flush()
	}
	return nil
}

// AddEnrollLink adds one enrollment link under its hash.
func (l *Loader) AddEnrollLink(hl store.HashedEnrollLink) error {
	if err := store.CheckLinkHash("load enrollment link", hl.Hash); err != nil {
		return err
	}
	if err := store.ValidateName(hl.Link.User); err != nil {
		return fmt.Errorf("enrollment link: %w", err)
	}
	data, err := store.EncodeEnrollLink(hl.Link)
	if err != nil {
		return fmt.Errorf("enrollment link: %w", err)
	}
	return l.addLinkData(hl.Hash, data)
}

// addLinkData adds a link as it is stored (data: its JSON).
func (l *Loader) addLinkData(hash, data []byte) error {
	if err := l.flush(); err != nil { // the link's user first
		return err
	}
	return putLinkTx(l.ctx, l.tx, hash, data)
}

func (l *Loader) flush() error {
	if len(l.batch) == 0 {
		return nil
	}
	_, err := l.tx.CopyFrom(l.ctx, pgx.Identifier{"users"}, []string{"name", "record"}, pgx.CopyFromRows(l.batch))
	l.batch = l.batch[:0]
	return err
}

// Load fills the database in one transaction: fill adds users and links
// through the Loader, and nothing is visible, or kept, unless all of it
// commits. A database that holds users or links is refused with
// ErrNotEmpty unless replace, which deletes them in the same
// transaction. Load returns how many users it added.
func (db *DB) Load(ctx context.Context, replace bool, fill func(l *Loader) error) (int, error) {
	if err := db.usable("load"); err != nil {
		return 0, err
	}
	var fillErr error
	l := &Loader{ctx: ctx, db: db}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		l.tx = tx
		// Two loads at once would interleave; and the emptiness check
		// must hold until the commit.
		if _, err := tx.Exec(ctx, "LOCK TABLE users, enroll_links IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		var users, links int64
		if err := tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM enroll_links)").Scan(&users, &links); err != nil {
			return err
		}
		if users+links > 0 {
			if !replace {
				return fmt.Errorf("%w: it holds %d users and %d enrollment links", ErrNotEmpty, users, links)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM enroll_links; DELETE FROM users"); err != nil {
				return err
			}
		}
		if fillErr = fill(l); fillErr != nil {
			return fillErr
		}
		return l.flush()
	})
	if fillErr != nil {
		return 0, fillErr
	}
	if isUniqueViolation(err) {
		return 0, opErr("load", "", store.ErrUserExists)
	}
	if err != nil {
		if errors.Is(err, ErrNotEmpty) {
			return 0, err
		}
		return 0, opErr("load", "", err)
	}
	return l.users, nil
}
