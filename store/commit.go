package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// maxBatch bounds the write requests one transaction carries.
const maxBatch = 1024

// committer is group commit: one goroutine runs all write transactions back
// to back. Every request that queued while the previous transaction was
// committing (fsync) goes into the next transaction, so N concurrent
// writers pay for about one fsync instead of N. Each request's fn runs in
// turn on the same transaction, so it reads the effects of the requests
// before it (a fresh read, as in a transaction of its own), and nothing is
// acknowledged before the transaction holding it is durable.
//
// bbolt has no nested transactions, so a failing request is isolated like
// this: a request marked clean promises that fn returns an error only
// before it has written anything (it validates first) unless it wraps the
// error with dirty. A clean error just goes back to its caller and the
// transaction goes on with the others. Any other error (a dirty one, an
// error from an unmarked fn, a panic) rolls the whole transaction back,
// goes to its caller alone, and the other requests run again in a new
// transaction. fn must therefore not have effects outside tx.
//
// A batch made only of Updates does not become a bbolt transaction: the
// committer compares each with the current record and appends the results
// to the write-ahead log, one durable write for the batch (commitLogged,
// wal.go). When the log's overlay is full, the committer freezes it and a
// goroutine checkpoints it into bbolt while logging goes on. Any other
// batch first waits for that checkpoint and puts the rest of the log into
// its own transaction.
type committer struct {
	bolt *bolt.DB
	wal  *wal         // nil: every write is a bbolt transaction (see wal.go)
	mu   sync.RWMutex // held for reading while a request is handed over
	shut bool
	reqs chan *writeReq
	done chan struct{}

	// The background checkpoint; only the committer goroutine uses these.
	cpDone    chan error // its result
	cpRunning bool
	cpRetry   time.Time // after a failed one: when to try again
	cpFailed  int       // checkpoints failed in a row (for the log)
	logger    *slog.Logger
	// cpHook, if set (tests), runs in the background checkpoint before
	// its transaction; an error fails the checkpoint.
	cpHook func() error
	// cpWaitHook, if set (tests), runs on the committer goroutine when it
	// starts waiting for a running background checkpoint.
	cpWaitHook func()

	// boltGen counts bbolt write transactions; each adds one when it has
	// ended (committed or not) and before the log drops any record it put
	// into bbolt. An Update that read its record from bbolt at generation
	// g (read before the log was asked) knows, while boltGen is still g
	// and the log has no newer record, that bbolt still holds what it read.
	boltGen atomic.Uint64

	stats statCounters // for DB.Stats

	txs       atomic.Int64 // transactions committed or attempted (tests)
	boltReads atomic.Int64 // read transactions commitLogged needed (tests)
	maxBatch  atomic.Int64 // largest batch seen (tests)
}

type writeReq struct {
	fn    func(tx *bolt.Tx) error
	clean bool
	upd   *updateReq // set by Update: may be logged instead of run in a transaction
	res   chan writeResult
}

// updateReq is an Update the committer can decide without a bbolt
// transaction: if the user's current record is still seen, log data; if
// it changed, log redo(current).
type updateReq struct {
	name string
	seen []byte // the record fn ran on
	data []byte // fn's result
	redo func(cur []byte) ([]byte, error)
	// fromBolt: seen was read from bbolt (not the log) at boltGen gen.
	fromBolt bool
	gen      uint64
}

// writeResult is the outcome of one request: fn's own error (returned to the
// caller as is), or bbolt's error for the transaction (begin, commit, fsync),
// or a panic of fn to re-raise on the caller's goroutine.
type writeResult struct {
	err      error
	txErr    error
	panicked bool
	panicVal any
}

// dirtyError marks an error a clean fn returns after it has written.
type dirtyError struct{ err error }

func (e dirtyError) Error() string { return e.err.Error() }
func (e dirtyError) Unwrap() error { return e.err }

// dirty wraps err so the committer rolls back what the failing fn wrote.
func dirty(err error) error { return dirtyError{err} }

var errRollback = errors.New("store: roll back batch")

func newCommitter(b *bolt.DB, w *wal, log *slog.Logger) *committer {
	c := &committer{bolt: b, wal: w, logger: log, reqs: make(chan *writeReq, maxBatch), done: make(chan struct{}), cpDone: make(chan error, 1)}
	go c.run()
	return c
}

// submit hands fn to the committer and waits until its transaction is
// durable or failed.
func (c *committer) submit(fn func(tx *bolt.Tx) error, clean bool) writeResult {
	return c.submitReq(&writeReq{fn: fn, clean: clean, res: make(chan writeResult, 1)})
}

func (c *committer) submitReq(r *writeReq) writeResult {
	c.mu.RLock()
	if c.shut {
		c.mu.RUnlock()
		return writeResult{txErr: bolterrors.ErrDatabaseNotOpen}
	}
	c.reqs <- r
	c.mu.RUnlock()
	return <-r.res
}

// close lets the committer finish every request handed over and stops it.
func (c *committer) close() {
	c.mu.Lock()
	if !c.shut {
		c.shut = true
		close(c.reqs)
	}
	c.mu.Unlock()
	<-c.done
}

func (c *committer) run() {
	defer close(c.done)
	defer c.waitCheckpoint()
	batch := make([]*writeReq, 0, maxBatch)
	for {
		var r *writeReq
		select {
		case err := <-c.cpDone:
			c.checkpointDone(err)
			continue
		case next, ok := <-c.reqs:
			if !ok {
				return
			}
			r = next
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if c.wal != nil && allUpdates(batch) {
			c.commitLogged(batch)
		} else {
			c.commit(batch)
		}
		clear(batch)
		c.maybeCheckpoint()
	}
}

func allUpdates(batch []*writeReq) bool {
	for _, r := range batch {
		if r.upd == nil {
			return false
		}
	}
	return true
}

// commitLogged decides a batch of Updates against the current records (the
// overlay, else bbolt) and appends the results to the write-ahead log: one
// durable write for the batch (walwrite.go). Nothing is visible or
// acknowledged before the log is durable.
func (c *committer) commitLogged(batch []*writeReq) {
	if n := int64(len(batch)); n > c.maxBatch.Load() {
		c.maxBatch.Store(n)
	}
	c.txs.Add(1)
	results := make([]writeResult, len(batch))
	latest := make(map[string][]byte, len(batch)) // written earlier in this batch
	recs := make([]walRecord, 0, len(batch))
	logged := make([]int, 0, len(batch))
	// bbolt is read only for records that may have changed there since
	// their Update read them (see boltGen), in one read transaction.
	var (
		tx      *bolt.Tx
		users   *bolt.Bucket
		readErr error
	)
	defer func() {
		if tx != nil { // a panic in the loop below
			_ = tx.Rollback()
		}
	}()
	readBolt := func(name string) ([]byte, error) {
		if tx == nil && readErr == nil {
			c.boltReads.Add(1)
			if tx, readErr = c.bolt.Begin(false); readErr == nil {
				users, readErr = usersBucket(tx)
			}
		}
		if readErr != nil {
			return nil, readErr
		}
		return users.Get([]byte(name)), nil // valid until tx ends below
	}
	for i, r := range batch {
		u := r.upd
		cur, ok := latest[u.name]
		if !ok {
			cur, ok = c.wal.get(u.name)
		}
		if !ok {
			if u.fromBolt && u.gen == c.boltGen.Load() {
				cur = u.seen
			} else {
				var err error
				if cur, err = readBolt(u.name); err != nil {
					results[i].txErr = err
					continue
				}
			}
		}
		if cur == nil {
			results[i].err = fmt.Errorf("store: update %q: %w", u.name, ErrUserNotFound)
			continue
		}
		data := u.data
		if !bytes.Equal(cur, u.seen) {
			var res writeResult
			if data, res = redo(u, cur); res.err != nil || res.panicked {
				results[i] = res
				continue
			}
			if len(data) > walMaxRecord {
				results[i].txErr = fmt.Errorf("record of %d bytes is too large for the write-ahead log", len(data))
				continue
			}
		}
		latest[u.name] = data
		recs = append(recs, walRecord{name: u.name, data: data})
		logged = append(logged, i)
	}
	if tx != nil {
		// Before logging: a checkpoint there may need to grow bbolt's
		// mmap, which waits for every read transaction to end.
		_ = tx.Rollback()
		tx = nil
	}
	if len(logged) > 0 {
		if err := c.log(recs); err != nil {
			for _, i := range logged {
				results[i].txErr = err
			}
		}
	}
	for i, r := range batch {
		r.res <- results[i]
	}
}

// redo runs an Update's function again on the changed current record.
func redo(u *updateReq, cur []byte) (data []byte, res writeResult) {
	defer func() {
		if p := recover(); p != nil {
			data, res = nil, writeResult{panicked: true, panicVal: p}
		}
	}()
	data, err := u.redo(cur)
	return data, writeResult{err: err}
}

// log makes recs durable and visible: appended to the log's active
// region, after making room there if needed. A batch bigger than a whole
// region goes into bbolt with the rest of the log instead.
func (c *committer) log(recs []walRecord) error {
	n := encodedLen(recs)
	if !c.wal.fits(n) {
		if err := c.makeRoom(); err != nil {
			return err
		}
		if !c.wal.fits(n) {
			return c.checkpoint(recs...)
		}
	}
	start := time.Now()
	err := c.wal.append(recs)
	c.stats.appended(len(recs), time.Since(start), err)
	if err != nil {
		return err
	}
	c.wal.publish(recs)
	return nil
}

// makeRoom empties the active region: it freezes the overlay for a
// background checkpoint once the previous one has finished, or, if that
// one failed, checkpoints everything itself.
func (c *committer) makeRoom() error {
	if c.wal.off == 0 {
		return nil
	}
	c.waitCheckpoint()
	if _, _, failed := c.wal.frozenSet(); failed {
		return c.checkpoint()
	}
	c.startCheckpoint(c.wal.freeze())
	return nil
}

// maybeCheckpoint runs after each batch: it starts a background checkpoint
// when the overlay is full, or retries a failed one (at most once a
// second; meanwhile logging goes on in the active region).
func (c *committer) maybeCheckpoint() {
	if c.wal == nil || c.cpRunning {
		return
	}
	if recs, seq, failed := c.wal.frozenSet(); failed {
		if time.Now().After(c.cpRetry) {
			c.startCheckpoint(recs, seq)
		}
		return
	}
	if c.wal.full() {
		c.startCheckpoint(c.wal.freeze())
	}
}

// startCheckpoint puts the frozen records (up to sequence number seq)
// into bbolt in a goroutine; the result comes back on cpDone.
func (c *committer) startCheckpoint(frozen map[string][]byte, seq uint64) {
	c.cpRunning = true
	hook := c.cpHook
	go func() {
		if hook != nil {
			if err := hook(); err != nil {
				c.cpDone <- err
				return
			}
		}
		c.cpDone <- c.update(func(tx *bolt.Tx) error { return putRecords(tx, frozen, seq) })
	}()
}

// checkpointDone takes the background checkpoint's result. On failure the
// frozen records stay (durable in their region, visible to readers) and
// are tried again later.
func (c *committer) checkpointDone(err error) {
	c.cpRunning = false
	c.checkpointResult(err)
	if err != nil {
		c.cpRetry = time.Now().Add(time.Second)
		return
	}
	c.wal.thaw()
}

// checkpointResult counts a checkpoint (background or inline) and logs the
// first of a run of failures and the success that ends it: a failure is
// retried until it works, and nobody waits for its error.
func (c *committer) checkpointResult(err error) {
	c.stats.checkpointed(err)
	switch {
	case err != nil && c.cpFailed == 0:
		c.logger.Warn("store: copying the write-ahead log into the database failed; logins go on in the log, and it is retried",
			"err", err)
		c.cpFailed++
	case err != nil:
		c.cpFailed++
	case c.cpFailed > 0:
		c.logger.Info("store: the write-ahead log is copied into the database again", "failed_attempts", c.cpFailed)
		c.cpFailed = 0
	}
}

// waitCheckpoint waits for a running background checkpoint to finish.
func (c *committer) waitCheckpoint() {
	if c.cpRunning {
		if c.cpWaitHook != nil {
			c.cpWaitHook()
		}
		c.checkpointDone(<-c.cpDone)
	}
}

// checkpoint copies every logged record and extra into bbolt in one
// transaction and empties the log. On failure everything stays as it is
// (durable in the log) and the next write transaction or checkpoint tries
// again. It runs on the committer goroutine, or after it has stopped.
func (c *committer) checkpoint(extra ...walRecord) error {
	c.waitCheckpoint()
	flushed := false
	err := c.update(func(tx *bolt.Tx) error {
		var err error
		flushed, err = c.wal.flushInto(tx, extra...)
		return err
	})
	if flushed || err != nil {
		c.checkpointResult(err)
	}
	if err == nil && flushed {
		c.wal.checkpointed()
	}
	return err
}

// commit runs the requests in one transaction; a dirty failure is answered
// alone and the rest run again.
func (c *committer) commit(pending []*writeReq) {
	if n := int64(len(pending)); n > c.maxBatch.Load() {
		c.maxBatch.Store(n)
	}
	results := make([]writeResult, len(pending))
	if c.wal != nil {
		c.waitCheckpoint() // its transaction would overwrite this one's
	}
	for len(pending) > 0 {
		c.txs.Add(1)
		failed := -1
		flushed := false
		err := c.update(func(tx *bolt.Tx) error {
			// Logged updates go into bbolt first, so this transaction's
			// requests see them and bbolt alone holds the truth after.
			if c.wal != nil {
				var err error
				if flushed, err = c.wal.flushInto(tx); err != nil {
					return err
				}
			}
			wrote := flushed
			for i, r := range pending {
				var isDirty bool
				results[i], isDirty = apply(tx, r)
				if isDirty {
					failed = i
					return errRollback
				}
				wrote = wrote || results[i].err == nil
			}
			if !wrote {
				// Every request failed clean, so nothing was written:
				// roll back and spare the commit its fsync. Each
				// caller gets its own error (the loop below sets no
				// txErr for a request with an error).
				return errRollback
			}
			return nil
		})
		if failed >= 0 {
			pending[failed].res <- results[failed]
			pending = slices.Delete(slices.Clone(pending), failed, failed+1)
			results = results[:len(pending)]
			continue
		}
		if flushed {
			c.checkpointResult(err)
		}
		if err == nil && flushed {
			c.wal.checkpointed()
		}
		for i, r := range pending {
			res := results[i]
			if err != nil && res.err == nil {
				res.txErr = err // nothing of this batch was written
			}
			r.res <- res
		}
		return
	}
}

// update runs fn in a bbolt write transaction and counts it in boltGen.
// Every write transaction of an open DB goes through here.
func (c *committer) update(fn func(tx *bolt.Tx) error) error {
	defer c.boltGen.Add(1)
	return c.bolt.Update(fn)
}

// apply runs one request's fn inside tx and says whether the transaction
// must be rolled back.
func apply(tx *bolt.Tx, r *writeReq) (res writeResult, isDirty bool) {
	defer func() {
		if p := recover(); p != nil {
			res, isDirty = writeResult{panicked: true, panicVal: p}, true
		}
	}()
	err := r.fn(tx)
	if err == nil {
		return writeResult{}, false
	}
	var d dirtyError
	if errors.As(err, &d) {
		return writeResult{err: d.err}, true
	}
	return writeResult{err: err}, !r.clean
}
