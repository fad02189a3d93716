package store

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/otpgate/otpgate/store/loginlog"
	bolt "go.etcd.io/bbolt"
)

// Login updates (UpdateLogin) skip bbolt's commit, which costs two syncs
// and a page write per user: each is one write(2) of the user's new record
// to the login log (loginlog) under mu, served from memory (the overlay)
// until a checkpoint puts a batch of them into bbolt in one synced
// transaction. The write reaches the page cache before UpdateLogin returns,
// so a killed process loses nothing; a background goroutine syncs the log
// about once a second and keeps the time fence ahead of the clock
// (fence.go), so a power loss forgets at most about a second of lockout
// counters and never lets a code be accepted twice.
//
// Why not bbolt with NoSync for these: its unsynced commits reuse pages the
// last synced meta page still points at, so a power loss can leave a
// damaged file, not just an older one. The log's worst case is a torn tail
// that Read stops at.
//
// Everything else (writeTx) is a synced bbolt transaction that first puts
// the whole overlay into bbolt, so bbolt alone is the truth after it and no
// replay can undo it.
const (
	logName = "-logins" // the login log is the database path + logName
	// Checkpoint thresholds: overlay entries, time since the last one,
	// and the log size past which a checkpoint also blocks logins for its
	// transaction so that the log can be emptied.
	checkpointEntries = 8192
	checkpointEvery   = 30 * time.Second
	maxLogBytes       = 16 << 20
	defaultTick       = time.Second
)

// Files lists the files the store keeps for the database at dbPath,
// besides the key file: the database and its login log (present while the
// database is open for writing, or after a crash).
func Files(dbPath string) []string { return []string{dbPath, logPath(dbPath)} }

func logPath(dbPath string) string { return dbPath + logName }

// logged is one user's record in the login log.
type logged struct {
	seq  uint64
	data []byte // never changed in place
}

// current returns the current stored value of user name: the overlay's,
// else bbolt's (a copy), and the epoch when the overlay was asked.
func (db *DB) current(op, name string) (v []byte, epoch uint64, err error) {
	db.mu.RLock()
	if err := db.usable(op, false); err != nil {
		db.mu.RUnlock()
		return nil, 0, err
	}
	l, epoch := db.overlay[name], db.epoch
	db.mu.RUnlock()
	if l != nil {
		return l.data, epoch, nil
	}
	var inner error
	err = db.bolt.View(func(tx *bolt.Tx) error {
		cur, err := userValue(tx, op, name)
		v, inner = bytes.Clone(cur), err
		return err
	})
	if err != nil && inner == nil {
		err = opError(op, name, err)
	}
	return v, epoch, err
}

// snapshot copies the overlay.
func (db *DB) snapshot(op string) (map[string]*logged, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if err := db.usable(op, false); err != nil {
		return nil, err
	}
	return maps.Clone(db.overlay), nil
}

// UpdateLogin is Update for a login's bookkeeping (see Store): when fn
// changed only login fields, the record is appended to the login log
// instead of committed to bbolt. fn runs on the caller's goroutine; if the
// record changed before the append, fn runs again on the fresh one.
func (db *DB) UpdateLogin(ctx context.Context, name string, fn func(u *User) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update: %w", err)
	}
	if err := LookupName("update", name); err != nil {
		return err
	}
	if db.ro {
		return fmt.Errorf("store: update: %w", ErrReadOnly)
	}
	for range 4 {
		seen, epoch, err := db.current("update", name)
		if err != nil {
			return err
		}
		before, after, data, err := db.applyUpdate(name, seen, fn)
		if err != nil {
			return err
		}
		if !loginOnly(before, after) {
			break // a durable change: Update below
		}
		if t := after.TOTP; t != nil && t.LastStep > before.TOTP.LastStep {
			if err := db.advanceFence(stepStart(t, t.LastStep)); err != nil {
				return opError("update", name, err)
			}
		}
		done, err := db.appendLogin(name, seen, epoch, data)
		if done || err != nil {
			return err
		}
		// The record changed since it was read: run fn on the new one.
	}
	// Changed under us again and again, or not a login's change: a
	// transaction serializes it.
	return db.Update(ctx, name, fn)
}

// appendLogin logs data as user name's record if the record is still seen
// (read at epoch); done is false when it changed meanwhile.
func (db *DB) appendLogin(name string, seen []byte, epoch uint64, data []byte) (done bool, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.usable("update", true); err != nil {
		return false, err
	}
	cur := db.overlay[name]
	switch {
	case cur != nil && !bytes.Equal(cur.data, seen):
		return false, nil
	case cur == nil && db.epoch != epoch:
		return false, nil
	}
	start := time.Now()
	seq := db.seq + 1
	if err := db.llog.Append(loginlog.Record{Seq: seq, Name: name, Data: data}); err != nil {
		db.stats.appended(time.Since(start), err)
		return false, opError("update", name, err)
	}
	db.stats.appended(time.Since(start), nil)
	db.seq = seq
	db.overlay[name] = &logged{seq: seq, data: data}
	db.unsynced.Store(true)
	if len(db.overlay) == checkpointEntries {
		select {
		case db.kick <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// loginOnly says whether b differs from a only in what a login writes:
// the last step (upwards), the failure count, the lock and the times of
// the last failure and success.
func loginOnly(a, b *User) bool {
	return a.Name == b.Name && slices.Equal(a.Groups, b.Groups) && a.Disabled == b.Disabled &&
		a.PasswordHash == b.PasswordHash && sameTOTP(a.TOTP, b.TOTP, true) &&
		sameTOTP(a.PendingTOTP, b.PendingTOTP, false) && a.PendingTries == b.PendingTries &&
		slices.Equal(a.RecoveryCodes, b.RecoveryCodes) && a.Created.Equal(b.Created)
}

func sameTOTP(a, b *TOTP, stepMayGrow bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	step := a.LastStep == b.LastStep || stepMayGrow && b.LastStep > a.LastStep
	return step && bytes.Equal(a.Secret, b.Secret) && a.Algorithm == b.Algorithm &&
		a.Digits == b.Digits && a.Period == b.Period && a.Enrolled.Equal(b.Enrolled)
}

// putLogged puts records into tx and records seq as the last applied.
func putLogged(tx *bolt.Tx, recs map[string]*logged, seq uint64) error {
	if len(recs) == 0 {
		return nil
	}
	users, err := usersBucket(tx)
	if err != nil {
		return err
	}
	for name, l := range recs {
		if err := users.Put([]byte(name), l.data); err != nil {
			return fmt.Errorf("store: checkpoint user %q: %w", name, err)
		}
	}
	return putMetaUint(tx, keyLogApplied, seq)
}

// dropLogged forgets the overlay's records that a committed transaction
// put into bbolt (all when put is nil), and empties the log when nothing
// in it is needed any more. The caller holds mu.
func (db *DB) dropLogged(put map[string]*logged) {
	if put == nil {
		clear(db.overlay)
	}
	for name, l := range put {
		if db.overlay[name] == l {
			delete(db.overlay, name)
		}
	}
	db.epoch++
	if len(db.overlay) == 0 && db.llog != nil && db.llog.Size() > int64(loginlog.HeaderLen) {
		if err := db.llog.Reset(); err != nil {
			db.logger.Warn("store: emptying the login log failed; it keeps growing until the next checkpoint", "err", err)
		}
	}
}

// checkpoint puts the overlay into bbolt in one synced transaction. Logins
// go on meanwhile, unless block is set (the log has grown big): then they
// wait, so that the overlay ends empty and the log can be emptied.
func (db *DB) checkpoint(block bool) error {
	db.txMu.Lock()
	defer db.txMu.Unlock()
	db.mu.Lock()
	if db.closed || len(db.overlay) == 0 {
		db.mu.Unlock()
		return nil
	}
	snap, seq := maps.Clone(db.overlay), db.seq
	if !block {
		db.mu.Unlock()
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error { return putLogged(tx, snap, seq) })
	if !block {
		db.mu.Lock()
	}
	defer db.mu.Unlock()
	db.stats.checkpointed(err)
	if err != nil {
		db.logger.Warn("store: checkpoint of the login log into the database failed; logins go on in the log, and it is retried", "err", err)
		return err
	}
	db.dropLogged(snap)
	return nil
}

// advanceFence makes sure the durable fence is at least need and at least
// fenceMargin ahead of the clock; when it moves, it moves to
// now+fenceAhead (or need, if later) in one synced transaction.
func (db *DB) advanceFence(need int64) error {
	ok := func() bool {
		f := db.fence.Load()
		return need <= f && time.Duration(f-db.hooks.now().Unix())*time.Second >= fenceMargin
	}
	if ok() {
		return nil
	}
	db.txMu.Lock()
	defer db.txMu.Unlock()
	if ok() {
		return nil
	}
	next := max(db.fence.Load(), db.hooks.now().Add(fenceAhead).Unix(), need)
	err := db.bolt.Update(func(tx *bolt.Tx) error { return putMetaUint(tx, keyFence, uint64(next)) })
	if err != nil {
		return fmt.Errorf("move the time fence: %w", err)
	}
	db.fence.Store(next)
	db.stats.fenceMoves.Add(1)
	return nil
}

// syncLog syncs the login log if anything was appended since the last time.
func (db *DB) syncLog() {
	if !db.unsynced.Swap(false) {
		return
	}
	if err := db.llog.Sync(); err != nil {
		db.unsynced.Store(true)
		db.logger.Warn("store: syncing the login log failed; retried in a second", "err", err)
		return
	}
	db.stats.logSyncs.Add(1)
}

// tick is the background goroutine's periodic work.
func (db *DB) tick() {
	db.syncLog()
	if err := db.advanceFence(0); err != nil {
		db.logger.Warn("store: moving the time fence failed; logins move it themselves meanwhile", "err", err)
	}
	db.mu.RLock()
	n, size := len(db.overlay), db.llog.Size()
	db.mu.RUnlock()
	now := db.hooks.now()
	if n >= checkpointEntries || size >= maxLogBytes || n > 0 && now.Sub(db.lastCkpt) >= checkpointEvery {
		db.lastCkpt = now
		_ = db.checkpoint(size >= maxLogBytes)
	}
}

func (db *DB) run(every time.Duration) {
	defer close(db.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			db.tick()
		case <-db.kick:
			_ = db.checkpoint(false)
		}
	}
}

// Close puts the login log into the database, marks the stop clean and
// closes the files. It is safe to call more than once. If the final
// checkpoint fails the log is kept, as after a crash, for the next Open.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	if db.ro {
		return db.closeBolt(nil)
	}
	close(db.stop)
	<-db.done
	db.txMu.Lock()
	defer db.txMu.Unlock()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := putLogged(tx, db.overlay, db.seq); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyRunning)
	})
	if cerr := db.llog.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if rerr := os.Remove(logPath(db.path)); rerr != nil && !os.IsNotExist(rerr) {
			err = rerr
		}
	}
	if err != nil {
		err = fmt.Errorf("store: close %s: the login log is kept and replayed at the next open: %w", db.path, err)
	}
	return db.closeBolt(err)
}

func (db *DB) closeBolt(err error) error {
	if berr := db.bolt.Close(); err == nil && berr != nil {
		err = fmt.Errorf("store: close %s: %w", db.path, berr)
	}
	return err
}
