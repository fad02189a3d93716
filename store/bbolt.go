package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults for Options.
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultKeyFileName = "seed.key" // beside the database
)

// importFillPercent packs pages densely when Import appends keys in order.
const importFillPercent = 0.9

// DB is the bbolt implementation of Store. It is safe for concurrent use; a
// database file can be open in only one DB (one process) at a time.
type DB struct {
	bolt *bolt.DB
	path string
	keys *keyring
	// commit runs every write transaction (group commit, see commit.go).
	commit *committer
	// wal logs Updates and serves them until a checkpoint (see wal.go).
	wal *wal

	closeMu sync.Mutex
	closed  bool
}

var _ Store = (*DB)(nil)

// write runs fn in a read-write transaction and returns when it is durable
// (bbolt fsyncs on commit) or failed. It is the single write path: all
// writes go through the group committer (commit.go), which may put fn in one
// transaction with other writers' requests. Any error fn returns rolls back
// what fn wrote (and re-runs the others), so fn may fail after writing. fn
// must not have effects outside tx: it may run more than once.
func (db *DB) write(fn func(tx *bolt.Tx) error) error {
	return db.submit(fn, false).error()
}

// submit runs fn through the committer and re-raises a panic of fn on the
// caller's goroutine.
func (db *DB) submit(fn func(tx *bolt.Tx) error, clean bool) writeResult {
	res := db.commit.submit(fn, clean)
	if res.panicked {
		panic(res.panicVal)
	}
	return res
}

func (r writeResult) error() error {
	if r.err != nil {
		return r.err
	}
	return r.txErr
}

// read runs fn in one read-only transaction.
func (db *DB) read(fn func(tx *bolt.Tx) error) error { return db.bolt.View(fn) }

// writeOp is write for one Store method, whose fn validates before it
// writes: an error fn returns before writing leaves the rest of a batch
// untouched; after writing, fn must wrap the error with dirty. Errors fn
// returns (already wrapped with context) come back unchanged; bbolt's own
// errors (closed database, commit or fsync failure such as a full disk) are
// wrapped with op and name (the user, or "" for whole-store operations).
func (db *DB) writeOp(op, name string, fn func(tx *bolt.Tx) error) error {
	return db.writeOpReq(op, name, nil, fn)
}

// writeOpReq is writeOp for Update, which the committer may log (upd)
// instead of running fn in a transaction.
func (db *DB) writeOpReq(op, name string, upd *updateReq, fn func(tx *bolt.Tx) error) error {
	res := db.commit.submitReq(&writeReq{fn: fn, clean: true, upd: upd, res: make(chan writeResult, 1)})
	if res.panicked {
		panic(res.panicVal)
	}
	if res.err != nil {
		return res.err
	}
	if res.txErr != nil {
		return opError(op, name, res.txErr)
	}
	return nil
}

// readOp is writeOp for read-only transactions.
func (db *DB) readOp(op, name string, fn func(tx *bolt.Tx) error) error {
	var inner error
	err := db.read(func(tx *bolt.Tx) error {
		inner = fn(tx)
		return inner
	})
	if err != nil && inner == nil {
		return opError(op, name, err)
	}
	return err
}

// opError wraps a bbolt error; built only on failure, so the hot path
// formats nothing.
func opError(op, name string, err error) error {
	if name == "" {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return fmt.Errorf("store: %s %q: %w", op, name, err)
}

func usersBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket(bucketUsers)
	if b == nil {
		return nil, errors.New("store: bucket users missing (database damaged?)")
	}
	return b, nil
}

// lookupName checks a name passed to Get, Update or Delete. An invalid name
// can never be stored, so the error wraps both ErrUserNotFound and
// ErrInvalidName: callers that treat unknown users alike need no extra case.
func lookupName(op, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("store: %s: %w (%w)", op, ErrUserNotFound, err)
	}
	return nil
}

// Get returns the user called name, with the TOTP secret decrypted.
func (db *DB) Get(ctx context.Context, name string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, fmt.Errorf("store: get: %w", err)
	}
	if err := lookupName("get", name); err != nil {
		return User{}, err
	}
	v, err := db.stored("get", name)
	if err != nil {
		return User{}, err
	}
	u, err := decodeRecord(db.keys, name, v)
	if err != nil {
		return User{}, fmt.Errorf("store: get %q: %w", name, err)
	}
	return u, nil
}

// stored returns the current stored value of user name: the write-ahead
// log's, else bbolt's (a copy). The log is asked first: a record leaves it
// only after a checkpoint put it into bbolt, so a miss there means bbolt
// is at least as new.
func (db *DB) stored(op, name string) ([]byte, error) {
	v, _, err := db.storedFrom(op, name)
	return v, err
}

// storedFrom is stored, and says whether the value came from bbolt.
func (db *DB) storedFrom(op, name string) (v []byte, fromBolt bool, err error) {
	if v, ok := db.wal.get(name); ok {
		return v, false, nil
	}
	err = db.readOp(op, name, func(tx *bolt.Tx) error {
		cur, err := userValue(tx, op, name)
		v = bytes.Clone(cur)
		return err
	})
	return v, true, err
}

// userValue returns the value of user name in tx (valid only inside tx).
func userValue(tx *bolt.Tx, op, name string) ([]byte, error) {
	b, err := usersBucket(tx)
	if err != nil {
		return nil, err
	}
	v := b.Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("store: %s %q: %w", op, name, ErrUserNotFound)
	}
	return v, nil
}

// List returns all users sorted by name (byte order).
func (db *DB) List(ctx context.Context) ([]User, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	users := []User{}
	// The overlay is copied before the transaction begins: a checkpoint
	// in between only puts the same records into bbolt.
	logged := db.wal.snapshot()
	err := db.readOp("list", "", func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			if lv, ok := logged[string(k)]; ok {
				v = lv
			}
			u, err := decodeRecord(db.keys, string(k), v)
			if err != nil {
				return fmt.Errorf("store: list: user %q: %w", k, err)
			}
			users = append(users, u)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// Create adds u. Created is set to now when zero.
func (db *DB) Create(ctx context.Context, u User) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: create: %w", err)
	}
	if u.Created.IsZero() {
		u.Created = time.Now()
	}
	data, err := encodeRecord(db.keys, &u)
	if err != nil {
		return err
	}
	return db.writeOp("create", u.Name, func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		key := []byte(u.Name)
		if b.Get(key) != nil {
			return fmt.Errorf("store: create %q: %w", u.Name, ErrUserExists)
		}
		if err := b.Put(key, data); err != nil {
			return dirty(fmt.Errorf("store: create %q: %w", u.Name, err))
		}
		return nil
	})
}

// Update reads user name, applies fn to a fresh copy and writes the result,
// all atomically and durably when Update returns nil. If fn returns an error
// nothing is written and Update returns that error as is. fn must not change
// u.Name. fn may run more than once, each time on a fresh copy, so it must
// not have effects beyond u and variables it sets.
//
// Update is optimistic, so that the expensive part runs on the caller's
// goroutine, in parallel with other callers, and the single committer does
// only a compare and a put: fn runs on a snapshot read in a read-only
// transaction (decrypting the seed, checking a code, encoding the result),
// then the committer writes the new value only if the stored value is still
// byte for byte the one fn saw. Equal bytes are equal state, so that write
// is exactly what fn would have done on the fresh record. If another write
// got in between, fn runs again on the fresh record inside the write
// transaction. An error from fn on the snapshot (it decided not to write)
// is returned without a write transaction: the decision holds for the state
// as it was during the call. Concurrent Updates share one transaction and
// one fsync (group commit).
func (db *DB) Update(ctx context.Context, name string, fn func(u *User) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	if err := lookupName("update", name); err != nil {
		return err
	}
	gen := db.commit.boltGen.Load() // before the log is asked: see boltGen
	seen, fromBolt, err := db.storedFrom("update", name)
	if err != nil {
		return err
	}
	data, err := db.applyUpdate(name, seen, fn)
	if err != nil {
		return err
	}
	upd := &updateReq{name: name, seen: seen, data: data, fromBolt: fromBolt, gen: gen, redo: func(cur []byte) ([]byte, error) {
		return db.applyUpdate(name, cur, fn)
	}}
	if len(data) > walMaxRecord {
		upd = nil // too big for the log (never seen in practice): a transaction
	}
	return db.writeOpReq("update", name, upd, func(tx *bolt.Tx) error {
		v, err := userValue(tx, "update", name)
		if err != nil {
			return err
		}
		put := data
		if !bytes.Equal(v, seen) {
			// Changed since the snapshot: run fn on the fresh record.
			if put, err = db.applyUpdate(name, v, fn); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketUsers).Put([]byte(name), put); err != nil {
			return dirty(fmt.Errorf("store: update %q: %w", name, err))
		}
		return nil
	})
}

// applyUpdate decodes the stored value v of user name, applies fn and
// returns the value to store. Errors from fn come back as they are.
func (db *DB) applyUpdate(name string, v []byte, fn func(u *User) error) ([]byte, error) {
	var prev sealedSeeds
	u, err := decodeRecordSealed(db.keys, name, v, &prev)
	if err != nil {
		return nil, fmt.Errorf("store: update %q: %w", name, err)
	}
	if err := fn(&u); err != nil {
		return nil, err
	}
	if u.Name != name {
		return nil, fmt.Errorf("store: update %q: the update renamed the user to %.64q; renaming is not supported", name, u.Name)
	}
	data, err := encodeRecordReusing(db.keys, &u, &prev)
	if err != nil {
		return nil, fmt.Errorf("store: update %q: %w", name, err)
	}
	return data, nil
}

// Delete removes user name.
func (db *DB) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	if err := lookupName("delete", name); err != nil {
		return err
	}
	return db.writeOp("delete", name, func(tx *bolt.Tx) error {
		if _, err := userValue(tx, "delete", name); err != nil {
			return err
		}
		if err := tx.Bucket(bucketUsers).Delete([]byte(name)); err != nil {
			return dirty(fmt.Errorf("store: delete %q: %w", name, err))
		}
		return nil
	})
}

// Import creates all users in one transaction, or none: an invalid user, a
// name that exists already or one that appears twice in users fails the
// whole import with an error naming the user. Created is set to now when zero.
func (db *DB) Import(ctx context.Context, users []User) error {
	type item struct {
		name string
		data []byte
	}
	now := time.Now()
	items := make([]item, len(users))
	for i := range users {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("store: import: %w", err)
			}
		}
		u := users[i]
		if u.Created.IsZero() {
			u.Created = now
		}
		data, err := encodeRecord(db.keys, &u)
		if err != nil {
			return fmt.Errorf("store: import: entry %d: %w", i+1, err)
		}
		items[i] = item{u.Name, data}
	}
	if len(items) == 0 {
		return nil
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(items); i++ {
		if items[i].name == items[i-1].name {
			return fmt.Errorf("store: import: user %q appears more than once: %w", items[i].name, ErrUserExists)
		}
	}
	return db.writeOp("import", "", func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		// Check everything before the first Put, so a refused import
		// writes nothing (see writeOp).
		for i, it := range items {
			if i%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("store: import: %w", err)
				}
			}
			if b.Get([]byte(it.name)) != nil {
				return fmt.Errorf("store: import: user %q: %w", it.name, ErrUserExists)
			}
		}
		if last, _ := b.Cursor().Last(); last == nil || bytes.Compare(last, []byte(items[0].name)) < 0 {
			b.FillPercent = importFillPercent // pure append in key order
		}
		for i, it := range items {
			if i%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return dirty(fmt.Errorf("store: import: %w", err))
				}
			}
			if err := b.Put([]byte(it.name), it.data); err != nil {
				return dirty(fmt.Errorf("store: import: user %q: %w", it.name, err))
			}
		}
		return nil
	})
}

// Backup writes a consistent copy of the whole database file to w. The copy
// opens with the same key file.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	// A write transaction first puts logged updates into bbolt, which the
	// copy is taken from.
	if err := db.write(func(*bolt.Tx) error { return nil }); err != nil {
		return 0, fmt.Errorf("store: backup: checkpoint: %w", err)
	}
	var n int64
	err := db.read(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// HashRecoveryCode returns hex(HMAC-SHA256(k, name || 0x00 || code)) where
// k is derived from the master key. Pass the normalized code.
func (db *DB) HashRecoveryCode(name, code string) string {
	return db.keys.hashRecoveryCode(name, code)
}

// How the write-ahead log makes its appends durable (DB.LogWriter).
const (
	LogWriterDirect = "direct"          // Linux: O_DIRECT|O_DSYNC
	LogWriterSync   = "write+fdatasync" // elsewhere, or where the file system refuses direct I/O
)

// LogWriter names how the write-ahead log makes its appends durable:
// LogWriterDirect or LogWriterSync.
func (db *DB) LogWriter() string { return db.wal.writer.kind() }

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	db.commit.close()
	// The committer has stopped: put logged updates into bbolt, and drop the
	// emptied log file. If that fails the log is kept (as after a crash)
	// and the next Open replays it.
	cpErr := db.commit.checkpoint()
	walErr := db.wal.close(cpErr == nil)
	boltErr := db.bolt.Close()
	switch {
	case cpErr != nil:
		return fmt.Errorf("store: close %s: checkpoint (the write-ahead log is kept and replayed at the next open): %w", db.path, cpErr)
	case walErr != nil:
		return fmt.Errorf("store: close %s: %w", db.wal.path, walErr)
	case boltErr != nil:
		return fmt.Errorf("store: close %s: %w", db.path, boltErr)
	}
	return nil
}
