package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/store/loginlog"
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
// database file can be open for writing in only one DB (one process) at a
// time.
type DB struct {
	bolt   *bolt.DB
	path   string
	keys   *keyring
	ro     bool
	logger *slog.Logger
	hooks  hooks

	// txMu serializes the write transactions: checkpoints, fence moves
	// and the durable writes. Taken before mu.
	txMu sync.Mutex

	// mu guards what follows (logins.go).
	mu      sync.RWMutex
	closed  bool
	llog    *loginlog.Log      // nil when read-only
	overlay map[string]*logged // in the login log, not yet in bbolt
	seq     uint64             // last login log sequence number used
	// epoch grows whenever bbolt may have changed under a record that is
	// not in the overlay (a checkpoint dropped it, or a durable write), so
	// an UpdateLogin that read bbolt knows whether its read is still good.
	epoch uint64

	unsynced   atomic.Bool  // appended since the last sync of the log
	fence      atomic.Int64 // durable meta/fence, Unix seconds
	floor      int64        // set by Open: steps starting at or before it are used (fence.go)
	lastCkpt   time.Time    // only the background goroutine uses it
	stop, done chan struct{}
	kick       chan struct{} // asks the background goroutine for a checkpoint

	stats statCounters
}

var _ Store = (*DB)(nil)

// hooks are what the tests change.
type hooks struct {
	now    func() time.Time
	bootID func() string
	fs     loginlog.FS
	tick   time.Duration // background interval; < 0: none (tests call tick)
}

// opError wraps a bbolt error; built only on failure, so the hot path
// formats nothing.
func opError(op, name string, err error) error {
	if name == "" {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return fmt.Errorf("store: %s %q: %w", op, name, err)
}

// usable returns the error for an operation on a closed store, or on a
// read-only one when write is set. The caller holds mu.
func (db *DB) usable(op string, write bool) error {
	switch {
	case db.closed:
		return fmt.Errorf("store: %s: %w", op, ErrClosed)
	case write && db.ro:
		return fmt.Errorf("store: %s: %w", op, ErrReadOnly)
	}
	return nil
}

// writeTx runs fn in a durable bbolt transaction (synced before it
// returns), after the login log's records: bbolt alone holds the truth
// afterwards, so fn sees every login and no later replay can undo fn.
// Errors fn returns come back as they are; bbolt's (closed database,
// commit or sync failure such as a full disk) are wrapped with op and name.
// A failed transaction leaves everything as it was.
func (db *DB) writeTx(op, name string, fn func(tx *bolt.Tx) error) error {
	db.txMu.Lock()
	defer db.txMu.Unlock()
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.usable(op, true); err != nil {
		return err
	}
	var inner error
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := putLogged(tx, db.overlay, db.seq); err != nil {
			return err
		}
		inner = fn(tx)
		return inner
	})
	if err != nil {
		if inner == nil {
			return opError(op, name, err)
		}
		return err
	}
	db.dropLogged(nil) // moves the epoch on
	return nil
}

func usersBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	b := tx.Bucket(bucketUsers)
	if b == nil {
		return nil, errors.New("store: bucket users missing (database damaged?)")
	}
	return b, nil
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

// decode is decodeRecord with the fence's floor applied (fence.go).
func (db *DB) decode(name string, v []byte) (User, error) {
	u, err := decodeRecordSealed(db.keys, name, v, nil)
	if err == nil {
		applyFloor(&u, db.floor)
	}
	return u, err
}

// Get returns the user called name, with the TOTP secret decrypted.
func (db *DB) Get(ctx context.Context, name string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, fmt.Errorf("store: get: %w", err)
	}
	if err := LookupName("get", name); err != nil {
		return User{}, err
	}
	v, _, err := db.current("get", name)
	if err != nil {
		return User{}, err
	}
	u, err := db.decode(name, v)
	if err != nil {
		return User{}, fmt.Errorf("store: get %q: %w", name, err)
	}
	return u, nil
}

// List returns all users sorted by name (byte order).
func (db *DB) List(ctx context.Context) ([]User, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	// The overlay is copied before the transaction begins: a checkpoint
	// in between only puts the same or older records into bbolt.
	logged, err := db.snapshot("list")
	if err != nil {
		return nil, err
	}
	users := []User{}
	var inner error
	err = db.bolt.View(func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		inner = b.ForEach(func(k, v []byte) error {
			if l, ok := logged[string(k)]; ok {
				v = l.data
			}
			u, err := db.decode(string(k), v)
			if err != nil {
				return fmt.Errorf("store: list: user %q: %w", k, err)
			}
			users = append(users, u)
			return nil
		})
		return inner
	})
	if err != nil && inner == nil {
		return nil, opError("list", "", err)
	}
	return users, err
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
	return db.writeTx("create", u.Name, func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		key := []byte(u.Name)
		if b.Get(key) != nil {
			return fmt.Errorf("store: create %q: %w", u.Name, ErrUserExists)
		}
		if err := b.Put(key, data); err != nil {
			return fmt.Errorf("store: create %q: %w", u.Name, err)
		}
		return nil
	})
}

// Update reads user name, applies fn to a fresh copy and writes the result,
// all atomically and durably when Update returns nil. If fn returns an error
// nothing is written and Update returns that error as is. fn must not change
// u.Name. fn may run more than once, each time on a fresh copy, so it must
// not have effects beyond u and variables it sets.
func (db *DB) Update(ctx context.Context, name string, fn func(u *User) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	if err := LookupName("update", name); err != nil {
		return err
	}
	return db.writeTx("update", name, func(tx *bolt.Tx) error {
		v, err := userValue(tx, "update", name)
		if err != nil {
			return err
		}
		_, _, data, err := db.applyUpdate(name, v, fn)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketUsers).Put([]byte(name), data); err != nil {
			return fmt.Errorf("store: update %q: %w", name, err)
		}
		return nil
	})
}

// applyUpdate is applyRecord (codec.go, shared with every backend) on
// the stored value v of user name, with this store's fence floor. Errors
// from fn come back as they are.
func (db *DB) applyUpdate(name string, v []byte, fn func(u *User) error) (before, after *User, data []byte, err error) {
	var fnErr error
	before, after, data, err = applyRecord(db.keys, db.floor, name, v, func(u *User) error {
		fnErr = fn(u)
		return fnErr
	})
	switch {
	case fnErr != nil:
		return nil, nil, nil, fnErr
	case err != nil:
		return nil, nil, nil, fmt.Errorf("store: update %q: %w", name, err)
	}
	return before, after, data, nil
}

func cloneTOTP(t *TOTP) *TOTP {
	if t == nil {
		return nil
	}
	c := *t
	c.Secret = bytes.Clone(t.Secret)
	return &c
}

// Delete removes user name.
func (db *DB) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	if err := LookupName("delete", name); err != nil {
		return err
	}
	return db.writeTx("delete", name, func(tx *bolt.Tx) error {
		if _, err := userValue(tx, "delete", name); err != nil {
			return err
		}
		if err := tx.Bucket(bucketUsers).Delete([]byte(name)); err != nil {
			return fmt.Errorf("store: delete %q: %w", name, err)
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
	return db.writeTx("import", "", func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
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
		for _, it := range items {
			if err := b.Put([]byte(it.name), it.data); err != nil {
				return fmt.Errorf("store: import: user %q: %w", it.name, err)
			}
		}
		return nil
	})
}

// Backup writes a consistent copy of the whole database file to w. The copy
// opens with the same key file. A read-only store whose login log (left by
// a crash) holds records bbolt lacks refuses with ErrReadOnly: open it for
// writing once, which folds them in.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: backup: %w", err)
	}
	if db.ro {
		logged, err := db.snapshot("backup")
		if err != nil {
			return 0, err
		}
		if len(logged) > 0 {
			return 0, fmt.Errorf("store: backup: %w: the login log a crash left holds %d users' updates the database file lacks; "+
				"open the database for writing once (start otpgated) to fold them in", ErrReadOnly, len(logged))
		}
	} else if err := db.writeTx("backup", "", func(*bolt.Tx) error { return nil }); err != nil {
		return 0, err // the logged records go into bbolt first
	}
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
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
