package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/otpgate/otpgate/internal/safefile"
)

// Open opens or creates the database at path. See the package doc for the
// key file rules and the errors Open returns.
func Open(path string, opt Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: open: empty database path")
	}
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = DefaultLockTimeout
	}
	if opt.KeyFile == "" {
		opt.KeyFile = filepath.Join(filepath.Dir(path), DefaultKeyFileName)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opt.LockTimeout, OpenFile: safefile.OpenFile})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w: another process (probably otpgated) has held its lock for %s; "+
			"stop that process, or run otpgate while otpgated is up so it goes through the control socket", path, ErrLocked, opt.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path}
	if err := db.init(opt.KeyFile); err != nil {
		bdb.Close()
		return nil, err
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := openWAL(path, bdb, log)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	db.wal = w
	db.commit = newCommitter(bdb, w, log)
	return db, nil
}

// init checks the schema version, loads or creates the key, and creates or
// migrates the layout, all before any caller sees the DB.
func (db *DB) init(keyFile string) error {
	var st dbState
	err := db.read(func(tx *bolt.Tx) error {
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
	k, err := loadKeys(db.path, keyFile, st)
	if err != nil {
		return err
	}
	db.keys = k
	if !st.fresh && st.keyCheck != nil && st.hasCreated && st.version == currentSchema {
		return nil // nothing to write
	}
	// Before the committer starts: a plain transaction.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		if err := initMeta(tx, st, k, time.Now()); err != nil {
			return err
		}
		if st.fresh {
			return nil
		}
		return migrate(tx, st.version, migrations)
	})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", db.path, err)
	}
	return nil
}

// loadKeys reads the key file (or creates it for a database without seeds)
// and proves it belongs to the database.
func loadKeys(dbPath, keyFile string, st dbState) (*keyring, error) {
	master, err := readKeyFile(keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if st.keyCheck != nil || st.firstSeed != nil {
			return nil, fmt.Errorf("store: open %s: key file %s not found: %w; restore it from backup "+
				"(the TOTP seeds cannot be decrypted without it; a new key would not help)", dbPath, keyFile, ErrMissingKey)
		}
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
