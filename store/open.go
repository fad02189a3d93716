package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/otpgate/otpgate/store/loginlog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/otpgate/otpgate/internal/safefile"
)

// Open opens or creates the database at path. See the package doc for the
// key file rules and the errors Open returns.
func Open(path string, opt Options) (*DB, error) { return open(path, opt, hooks{}) }

func open(path string, opt Options, h hooks) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: open: empty database path")
	}
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	if opt.KeyFile == "" {
		opt.KeyFile = filepath.Join(filepath.Dir(path), DefaultKeyFileName)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.bootID == nil {
		h.bootID = currentBootID
	}
	if h.fs == nil {
		h.fs = loginlog.OS
	}
	if h.tick == 0 {
		h.tick = defaultTick
	}
	if !opt.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.LockTimeout, ReadOnly: opt.ReadOnly, OpenFile: safefile.OpenFile})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w: another process (probably otpgated) has held its lock for %s; "+
			"stop that process, or run otpgate while otpgated is up so it goes through the control socket", path, ErrLocked, opt.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db := &DB{
		bolt: bdb, path: path, ro: opt.ReadOnly, logger: log, hooks: h, overlay: map[string]*logged{},
		stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1),
	}
	if err := db.init(opt.KeyFile); err != nil {
		if db.llog != nil {
			db.llog.Close()
		}
		bdb.Close()
		return nil, err
	}
	if db.ro {
		return db, nil
	}
	db.lastCkpt = h.now()
	if h.tick > 0 {
		go db.run(h.tick)
	} else {
		close(db.done)
	}
	return db, nil
}

// init checks the schema version, loads or creates the key, replays the
// login log a crash left, then creates or migrates the layout and arms the
// time fence, all before any caller sees the DB. A read-only DB writes
// nothing: the log's records stay in memory.
func (db *DB) init(keyFile string) error {
	var st dbState
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		st, err = readState(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	if st.version > currentSchema {
		return fmt.Errorf("store: open %s: %w: the database has schema version %d but this otpgate supports up to %d; upgrade otpgate",
			db.path, ErrNewerSchema, st.version, currentSchema)
	}
	k, err := loadKeys(db.path, keyFile, st, db.ro)
	if err != nil {
		return err
	}
	db.keys = k

	// The log is read before migrations: its records have the layout of
	// the database they were written for. A database without an id has
	// never had a log, so any log beside it is another database's.
	var id [loginlog.IDLen]byte
	copy(id[:], st.dbID)
	recs, err := loginlog.Read(db.hooks.fs, logPath(db.path), id)
	if err != nil {
		return fmt.Errorf("store: open %s: login log: %w (move it away if it does not belong to this database)", db.path, err)
	}
	db.seq = st.applied
	replay := map[string]*logged{}
	for _, r := range recs {
		if r.Seq > st.applied {
			replay[r.Name] = &logged{seq: r.Seq, data: r.Data}
			db.seq = r.Seq
		}
	}
	if db.ro {
		db.overlay = replay
		return nil
	}

	now := db.hooks.now()
	boot := db.hooks.bootID()
	refuse := st.refuse
	if lostPower(st.running, boot) {
		refuse = max(refuse, st.fence)
		db.logger.Warn("store: the database was not closed on an earlier boot (power loss or crash): codes from time steps that start before the fence are refused",
			"until", time.Unix(refuse, 0).UTC().Format(time.RFC3339))
	}
	// A code stays acceptable for a few steps after its own (skew), so
	// the floor is kept well past the fence; once every step it covers is
	// out of any window, raising a last step to it changes nothing.
	if now.Unix() < refuse+int64(refuseGrace/time.Second) {
		db.floor = refuse
	} else {
		refuse = 0
	}
	fence := max(st.fence, now.Add(fenceAhead).Unix())
	if boot == "" {
		boot = "unknown"
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if err := initMeta(tx, st, k, now); err != nil {
			return err
		}
		if len(st.dbID) != loginlog.IDLen {
			rand.Read(id[:])
			if err := tx.Bucket(bucketMeta).Put(keyDBID, id[:]); err != nil {
				return fmt.Errorf("put db_id: %w", err)
			}
		}
		if err := putLogged(tx, replay, db.seq); err != nil {
			return err
		}
		if !st.fresh {
			if err := migrate(tx, st.version, migrations); err != nil {
				return err
			}
		}
		if err := putMetaUint(tx, keyFence, uint64(fence)); err != nil {
			return err
		}
		if err := putMetaUint(tx, keyRefuse, uint64(refuse)); err != nil { // both Unix seconds, never negative
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyRunning, []byte(boot))
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	db.fence.Store(fence)
	// Everything the old log held is in bbolt now: start a new one.
	if err := os.Remove(logPath(db.path)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	if db.llog, err = loginlog.Create(db.hooks.fs, logPath(db.path), id); err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	return nil
}

// loadKeys reads the key file (or creates it for a database without seeds)
// and proves it belongs to the database.
func loadKeys(dbPath, keyFile string, st dbState, readOnly bool) (*keyring, error) {
	master, err := readKeyFile(keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist) && (st.keyCheck != nil || st.firstSeed != nil || readOnly):
		return nil, fmt.Errorf("store: open %s: key file %s not found: %w; restore it from backup "+
			"(the TOTP seeds cannot be decrypted without it; a new key would not help)", dbPath, keyFile, ErrMissingKey)
	case errors.Is(err, os.ErrNotExist):
		master, err = createKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	k, err := newKeyring(master)
	clear(master)
	if err != nil {
		return nil, err
	}
	if st.keyCheck != nil && !k.matches(st.keyCheck) {
		return nil, fmt.Errorf("store: open %s: key file %s: %w (was the key file replaced or mixed up with another server's?)", dbPath, keyFile, ErrWrongKey)
	}
	if st.keyCheck == nil && st.firstSeed != nil {
		if _, err := decodeRecord(k, st.firstName, st.firstSeed); err != nil {
			return nil, fmt.Errorf("store: open %s: key file %s: %w: user %q: %v", dbPath, keyFile, ErrWrongKey, st.firstName, err)
		}
	}
	return k, nil
}
