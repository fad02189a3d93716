package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/otpgate/otpgate/internal/safefile"
)

// The write-ahead log (WAL) makes the hot write cheap. A bbolt commit costs
// two fdatasyncs (data pages, then the meta page) plus a page write per
// user touched; a code check changes one user record. So Updates that the
// committer can decide alone (updateReq) are appended to a log file beside
// the database, <db>-wal, with one durable write per batch (walwrite.go), and
// are served from memory (the overlay) until a checkpoint copies them into
// bbolt in one transaction. Every other write (create, delete, import, raw
// transactions) checkpoints in its own transaction first, so bbolt alone is
// the truth for them.
//
// The checkpoint runs in the background, so that code checks do not wait
// for it (a checkpoint rewrites a page per user touched, far more work than
// an append). The file has two regions. When the overlay is full it is
// frozen, appends go on at the start of the other region, and a goroutine
// puts the frozen records into bbolt; readers see the overlay, then the
// frozen records, then bbolt. Only after that transaction has committed is
// the frozen set dropped and its region free to be written again. If the
// active region fills up before that, the committer waits for it.
//
// Log format: in each region, records back to back, each
//
//	uint32  payload length (little endian)
//	uint32  CRC-32C of the payload
//	payload uint64 sequence number, uvarint name length, name, record value
//
// Regions are preallocated with zeros and written again from their start,
// without truncation. Sequence numbers grow by one per record and are never
// reused, also across regions and checkpoints. meta/wal_applied holds the
// last sequence number a checkpoint put into bbolt (in the same
// transaction). Replay at Open reads each region up to its end (zeros), a
// torn or corrupt record, or a sequence number that does not grow (what is
// left of an older generation, or of a batch whose write failed, behind a
// newer one), and applies the records above wal_applied of both regions in
// sequence order. Records not above wal_applied are already in bbolt.
const (
	walSuffix = "-wal"
	// walRegionSize is the size of each of the two regions; it is part of
	// the file format (replay finds region 1 there). A log written before
	// there were regions is region 0.
	walRegionSize = 4 << 20
	// walCheckpointEntries and walCheckpointBytes bound the overlay and the
	// active region's use: past either, the committer freezes the overlay
	// and starts a checkpoint after the batch. The rest of the region is
	// room for appends while the checkpoint runs.
	walCheckpointEntries = 4096
	walCheckpointBytes   = 1 << 20
	// walPrealloc of each region is written as zeros at Open: appends then
	// overwrite allocated blocks and fdatasync flushes data only, not also a
	// new file size through the file system's journal on every append.
	// Zeros end a region for replay.
	walPrealloc   = 2 * walCheckpointBytes
	walHeaderLen  = 8
	walMaxPayload = 1 << 20 // far above any record; bounds a damaged length
	// walMaxRecord is the largest user record logged (room for the sequence
	// number and name within walMaxPayload); a bigger one, which no real
	// user reaches, is written by a bbolt transaction instead.
	walMaxRecord = walMaxPayload - 1024
)

// WALPath is the write-ahead log of the database at dbPath. It exists while
// the database is open, and after a crash until the next Open replays it;
// it belongs with the database (same owner, mode 0600).
func WALPath(dbPath string) string { return dbPath + walSuffix }

var (
	keyWALApplied = []byte("wal_applied") // decimal; absent = 0
	crc32c        = crc32.MakeTable(crc32.Castagnoli)
)

// wal is the log file, the overlay and the frozen set. Only the committer
// goroutine changes them (write, publish, freeze, thaw, checkpointed);
// readers use get and snapshot.
type wal struct {
	f       *os.File
	path    string
	region  int64  // the active region: 0 or 1
	off     int64  // end of the last durable record in the active region
	seq     uint64 // last sequence number used
	applied uint64 // last sequence number in bbolt
	writer  walWriter
	buf     []byte // the last append's blocks; starts with the durable head of the block at off

	// Checkpoint thresholds (walCheckpointEntries, walCheckpointBytes);
	// tests lower them.
	maxEntries int
	maxBytes   int64

	mu        sync.RWMutex
	overlay   map[string][]byte // user name -> record, durable in the active region, not yet in bbolt
	frozen    map[string][]byte // durable in the other region, being put into bbolt; nil: none
	frozenSeq uint64            // last sequence number of the frozen records
}

// walRecord is one logged user record.
type walRecord struct {
	seq  uint64 // set by parseWAL
	name string
	data []byte
}

// openWAL opens (or creates) the log of the database at dbPath and replays
// it into b, so that bbolt holds everything and the log is empty.
func openWAL(dbPath string, b *bolt.DB, log *slog.Logger) (*wal, error) {
	path := WALPath(dbPath)
	_, statErr := os.Stat(path)
	f, err := safefile.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // no planted symlink or foreign file
	if err != nil {
		return nil, fmt.Errorf("store: open write-ahead log: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A log that vanishes in a crash loses acknowledged updates: make
		// its directory entry durable before anything is logged.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("store: open write-ahead log: %w", err)
		}
	}
	w := &wal{
		f: f, path: path, overlay: map[string][]byte{},
		maxEntries: walCheckpointEntries, maxBytes: walCheckpointBytes,
	}
	if err := w.replay(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: replay write-ahead log %s: %w", path, err)
	}
	w.writer = newWALWriter(f, log)
	return w, nil
}

// replay applies the log's records above wal_applied to bbolt in one
// transaction and empties the log.
func (w *wal) replay(b *bolt.DB) error {
	err := b.View(func(tx *bolt.Tx) error {
		var err error
		w.applied, err = readApplied(tx)
		return err
	})
	if err != nil {
		return err
	}
	w.seq = w.applied
	data, err := io.ReadAll(io.NewSectionReader(w.f, 0, 2*walRegionSize))
	if err != nil {
		return err
	}
	recs, last := parseWAL(data[:min(len(data), walRegionSize)], w.applied)
	if len(data) > walRegionSize {
		recs1, last1 := parseWAL(data[walRegionSize:], w.applied)
		recs, last = append(recs, recs1...), max(last, last1)
		slices.SortStableFunc(recs, func(a, b walRecord) int { return cmp.Compare(a.seq, b.seq) })
	}
	if len(recs) > 0 {
		err = b.Update(func(tx *bolt.Tx) error {
			users, err := usersBucket(tx)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := users.Put([]byte(r.name), r.data); err != nil {
					return fmt.Errorf("user %q: %w", r.name, err)
				}
			}
			return putApplied(tx, last)
		})
		if err != nil {
			return err
		}
	}
	if last > w.seq {
		w.seq = last
	}
	w.applied = w.seq
	return w.reset()
}

// parseWAL returns the records of one region with sequence numbers above
// applied, in order, and the last sequence number it read (applied if none).
func parseWAL(data []byte, applied uint64) (recs []walRecord, last uint64) {
	last = applied
	var prev uint64
	for len(data) >= walHeaderLen {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if n < 9 || n > walMaxPayload || int64(n) > int64(len(data)-walHeaderLen) {
			break
		}
		p := data[walHeaderLen : walHeaderLen+int(n)]
		data = data[walHeaderLen+int(n):]
		if crc32.Checksum(p, crc32c) != sum {
			break
		}
		seq := binary.LittleEndian.Uint64(p)
		if seq <= prev {
			break
		}
		prev = seq
		nameLen, k := binary.Uvarint(p[8:])
		if k <= 0 || nameLen > uint64(len(p)-8-k) {
			break
		}
		if seq <= applied {
			continue
		}
		name := string(p[8+k : 8+k+int(nameLen)])
		recs = append(recs, walRecord{seq: seq, name: name, data: append([]byte(nil), p[8+k+int(nameLen):]...)})
		last = seq
	}
	return recs, last
}

func readApplied(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keyWALApplied)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta wal_applied %.20q is not a number (database damaged?)", v)
	}
	return n, nil
}

func putApplied(tx *bolt.Tx, seq uint64) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("bucket meta missing (database damaged?)")
	}
	return meta.Put(keyWALApplied, []byte(strconv.FormatUint(seq, 10)))
}

// get returns the logged record for name, if any: the overlay's, else the
// frozen set's. Logged records are never changed in place, only replaced,
// so the slice may be kept; it must not be modified.
func (w *wal) get(name string) ([]byte, bool) {
	w.mu.RLock()
	v, ok := w.overlay[name]
	if !ok {
		v, ok = w.frozen[name]
	}
	w.mu.RUnlock()
	return v, ok
}

// snapshot copies the logged records (for List).
func (w *wal) snapshot() map[string][]byte {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if len(w.overlay)+len(w.frozen) == 0 {
		return nil
	}
	m := make(map[string][]byte, len(w.overlay)+len(w.frozen))
	for k, v := range w.frozen {
		m[k] = v // values are never changed in place, only replaced
	}
	for k, v := range w.overlay {
		m[k] = v
	}
	return m
}

// encodedLen is the size of recs in the log.
func encodedLen(recs []walRecord) int64 {
	var n int64
	for _, r := range recs {
		n += walHeaderLen + 8 + int64(uvarintLen(uint64(len(r.name)))+len(r.name)+len(r.data))
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// fits says whether n more bytes fit in the active region.
func (w *wal) fits(n int64) bool { return w.off+n <= walRegionSize }

// append writes recs after the last durable record of the active region and
// makes them durable; the caller has made sure they fit. The write covers
// whole blocks (walBlock): the durable head of the first block again, the
// records, zeros to the end of the last block (past the durable end there
// is nothing replay needs). On failure nothing is published and the next
// append overwrites the same place; the sequence numbers used are not
// reused.
func (w *wal) append(recs []walRecord) error {
	start := w.off &^ (walBlock - 1) // of the first block, in the region
	head := int(w.off - start)       // its durable bytes, kept in w.buf
	size := int(roundUpBlock(w.off + encodedLen(recs) - start))
	if size > len(w.buf) {
		buf := alignedBlocks(max(size, 2*len(w.buf)))
		copy(buf, w.buf[:head])
		w.buf = buf
	}
	buf := w.buf[:head]
	for _, r := range recs {
		w.seq++
		at := len(buf)
		buf = append(buf, make([]byte, walHeaderLen)...)
		buf = binary.LittleEndian.AppendUint64(buf, w.seq)
		buf = binary.AppendUvarint(buf, uint64(len(r.name)))
		buf = append(buf, r.name...)
		buf = append(buf, r.data...)
		p := buf[at+walHeaderLen:]
		binary.LittleEndian.PutUint32(buf[at:], uint32(len(p)))
		binary.LittleEndian.PutUint32(buf[at+4:], crc32.Checksum(p, crc32c))
	}
	end := len(buf)
	if end > size {
		panic("store: write-ahead log batch outgrew its buffer")
	}
	clear(w.buf[end:size])
	if err := w.writer.writeDurable(w.buf[:size], w.region*walRegionSize+start); err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	w.off = start + int64(end)
	// Keep the new last block's durable head for the next append.
	last := int(w.off&^(walBlock-1) - start)
	copy(w.buf, w.buf[last:end])
	return nil
}

// publish makes durable records visible to readers.
func (w *wal) publish(recs []walRecord) {
	w.mu.Lock()
	for _, r := range recs {
		w.overlay[r.name] = r.data
	}
	w.mu.Unlock()
}

// full says the overlay is due for a checkpoint.
func (w *wal) full() bool {
	w.mu.RLock()
	n := len(w.overlay)
	w.mu.RUnlock()
	return n >= w.maxEntries || w.off >= w.maxBytes
}

// frozenSet returns the frozen records and their last sequence number;
// ok is false when there are none.
func (w *wal) frozenSet() (recs map[string][]byte, seq uint64, ok bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.frozen, w.frozenSeq, w.frozen != nil
}

// freeze makes the overlay the frozen set and switches appends to the
// start of the other region, whose records are all in bbolt (there is no
// frozen set). It returns what freezeCheckpoint needs.
func (w *wal) freeze() (recs map[string][]byte, seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen != nil {
		panic("store: write-ahead log frozen twice")
	}
	w.frozen, w.frozenSeq = w.overlay, w.seq
	w.overlay = make(map[string][]byte, len(w.frozen))
	w.region ^= 1
	w.off = 0
	return w.frozen, w.frozenSeq
}

// putRecords puts recs into tx and records seq as applied.
func putRecords(tx *bolt.Tx, recs map[string][]byte, seq uint64) error {
	users, err := usersBucket(tx)
	if err != nil {
		return err
	}
	if err := putUsers(users, recs); err != nil {
		return err
	}
	if err := putApplied(tx, seq); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

func putUsers(users *bolt.Bucket, recs map[string][]byte) error {
	for name, v := range recs {
		if err := users.Put([]byte(name), v); err != nil {
			return fmt.Errorf("store: checkpoint user %q: %w", name, err)
		}
	}
	return nil
}

// thaw drops the frozen set after a transaction holding it (putRecords
// with its sequence number) committed; its region is free again.
func (w *wal) thaw() {
	w.mu.Lock()
	w.frozen = nil
	w.mu.Unlock()
	w.applied = max(w.applied, w.frozenSeq)
}

// flushInto puts every logged record (frozen, then the overlay, then
// extra, which is not logged) into tx and records the last sequence number
// as applied. It reports whether there was anything to put.
func (w *wal) flushInto(tx *bolt.Tx, extra ...walRecord) (bool, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if len(w.overlay) == 0 && w.frozen == nil && len(extra) == 0 && w.applied == w.seq {
		return false, nil
	}
	users, err := usersBucket(tx)
	if err != nil {
		return false, err
	}
	if err := putUsers(users, w.frozen); err != nil {
		return false, err
	}
	if err := putUsers(users, w.overlay); err != nil {
		return false, err
	}
	for _, r := range extra {
		if err := users.Put([]byte(r.name), r.data); err != nil {
			return false, fmt.Errorf("store: checkpoint user %q: %w", r.name, err)
		}
	}
	if err := putApplied(tx, w.seq); err != nil {
		return false, fmt.Errorf("store: checkpoint: %w", err)
	}
	return true, nil
}

// checkpointed is called after a transaction that ran flushInto committed:
// bbolt holds every logged record, so the overlay and the frozen set are
// emptied and appends start again at the start of the active region. What
// is left in the log is not above wal_applied, so replay skips it or stops
// at it.
func (w *wal) checkpointed() {
	w.mu.Lock()
	clear(w.overlay)
	w.frozen = nil
	w.mu.Unlock()
	w.applied = w.seq
	w.off = 0
}

// reset empties the log file and preallocates both regions with zeros
// (durably). Preallocation is only for speed: on a full disk the log stays
// empty and Open goes on (appends then fail with the disk's error, as bbolt
// would).
func (w *wal) reset() error {
	w.region, w.off = 0, 0
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	zeros := make([]byte, walPrealloc)
	_, err := w.f.WriteAt(zeros, 0)
	if err == nil {
		_, err = w.f.WriteAt(zeros, walRegionSize)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

// close closes the log file; remove deletes it too (after a checkpoint
// emptied it, at a clean Close).
func (w *wal) close(remove bool) error {
	err := errors.Join(w.writer.close(), w.f.Close())
	if remove && err == nil && w.applied == w.seq {
		err = os.Remove(w.path)
	}
	return err
}
