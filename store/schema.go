package store

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// currentSchema is the layout version this program writes. Bump it together
// with a new entry in migrations, and keep testdata/schema<N>.db of the
// previous version so the step is tested on a real old file.
const currentSchema = 3

// Bucket and meta key names.
var (
	bucketMeta  = []byte("meta")
	bucketUsers = []byte("users")

	keySchemaVersion = []byte("schema_version") // decimal ASCII
	keyKeyCheck      = []byte("key_check")      // HMAC proving the key file matches
	keyCreated       = []byte("created")        // RFC 3339, when the database was made

	// Kept by the login log and the time fence (logins.go, fence.go).
	keyDBID       = []byte("db_id")        // 16 random bytes, named in the login log's header
	keyLogApplied = []byte("log_applied")  // decimal: last login log sequence number in the database
	keyFence      = []byte("fence")        // decimal Unix seconds: no accepted step starts after it
	keyRunning    = []byte("running")      // boot id of the open that has not closed yet; absent after a clean close
	keyRefuse     = []byte("refuse_until") // decimal Unix seconds: the fence a power loss left, until the clock passes it
)

// migration upgrades a database from version to-1 to version to. apply runs
// inside the single read-write transaction that performs all pending steps,
// after the meta and users buckets exist; it must not commit or roll back.
type migration struct {
	to    int
	name  string
	apply func(tx *bolt.Tx) error
}

// migrations[i] upgrades version i to i+1; len(migrations) == currentSchema.
var migrations = []migration{
	{
		to: 1,
		// Version 0 is the pre-versioned layout: the same meta and users
		// buckets and record format, but no schema_version key.
		name:  "stamp schema_version on a pre-versioned database",
		apply: func(*bolt.Tx) error { return nil },
	},
	{
		to: 2,
		// Records are written in the binary form (recordbin.go) from now
		// on; JSON records are still read and turn binary at their next
		// write, so the step rewrites nothing (start-up stays fast on a
		// big database). The version stops an older otpgate, which reads
		// only JSON, from opening the database.
		name:  "binary user records",
		apply: func(*bolt.Tx) error { return nil },
	},
	{
		to: 3,
		// One-time enrollment links (links.go) get a bucket of their own;
		// an older otpgate would not know to expire or honour them.
		name:  "enrollment links bucket",
		apply: createLinksBucket,
	},
}

// dbState is what Open learns from a database before touching it.
type dbState struct {
	fresh      bool   // no buckets at all: a new database
	version    int    // schema version (0 = pre-versioned)
	keyCheck   []byte // nil when absent
	hasCreated bool
	firstSeed  []byte // without key_check: one record holding a sealed seed, if any
	firstName  string // and its name

	dbID    []byte // nil before the first open of this version
	applied uint64 // keyLogApplied
	fence   int64  // keyFence, Unix seconds; 0 = none
	running []byte // keyRunning: nil after a clean close
	refuse  int64  // keyRefuse
}

func readState(tx *bolt.Tx) (dbState, error) {
	var st dbState
	meta, users := tx.Bucket(bucketMeta), tx.Bucket(bucketUsers)
	if meta == nil && users == nil {
		st.fresh = true
		return st, nil
	}
	if meta != nil {
		if v := meta.Get(keySchemaVersion); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 0 {
				return st, fmt.Errorf("meta schema_version %.20q is not a version number (database damaged?)", v)
			}
			st.version = n
		}
		if v := meta.Get(keyKeyCheck); v != nil {
			st.keyCheck = append([]byte(nil), v...)
		}
		st.hasCreated = meta.Get(keyCreated) != nil
		if v := meta.Get(keyDBID); v != nil {
			st.dbID = bytes.Clone(v)
		}
		var err error
		if st.applied, err = metaUint(meta, keyLogApplied); err != nil {
			return st, err
		}
		f, err := metaUint(meta, keyFence)
		if err != nil {
			return st, err
		}
		st.fence = int64(f)
		r, err := metaUint(meta, keyRefuse)
		if err != nil {
			return st, err
		}
		st.refuse = int64(r)
		if v := meta.Get(keyRunning); v != nil {
			st.running = bytes.Clone(v)
		}
	}
	if users != nil && st.keyCheck == nil { // only then does Open need to know
		c := users.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if hasSealedSeed(v) {
				st.firstName, st.firstSeed = string(k), append([]byte(nil), v...)
				break
			}
		}
	}
	return st, nil
}

// hasSealedSeed is a cheap, conservative pre-check used only to decide
// whether a database without key_check may already hold seeds (then no new
// key may be made for it).
func hasSealedSeed(v []byte) bool {
	if isBinaryRecord(v) {
		var r record
		return unmarshalBinaryRecord(v, &r) != nil || r.SealedSeed != nil || r.SealedPendingSeed != nil
	}
	return bytes.Contains(v, []byte(`"sealed_seed"`))
}

// migrate runs steps from version from up to len(steps), stamping
// schema_version after each, inside tx. The caller commits (bbolt fsyncs).
func migrate(tx *bolt.Tx, from int, steps []migration) error {
	meta := tx.Bucket(bucketMeta)
	for v := from; v < len(steps); v++ {
		s := steps[v]
		if s.to != v+1 {
			return fmt.Errorf("migration list broken: step %d goes to version %d", v, s.to)
		}
		if err := s.apply(tx); err != nil {
			return fmt.Errorf("migrate schema %d -> %d (%s): %w", v, s.to, s.name, err)
		}
		if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(s.to))); err != nil {
			return fmt.Errorf("migrate schema %d -> %d: stamp version: %w", v, s.to, err)
		}
	}
	return nil
}

// initMeta creates the buckets and the meta keys a database lacks.
func initMeta(tx *bolt.Tx, st dbState, k *keyring, now time.Time) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("create bucket meta: %w", err)
	}
	if _, err := tx.CreateBucketIfNotExists(bucketUsers); err != nil {
		return fmt.Errorf("create bucket users: %w", err)
	}
	if st.fresh {
		if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(currentSchema))); err != nil {
			return fmt.Errorf("put schema_version: %w", err)
		}
	}
	if st.keyCheck == nil {
		if err := meta.Put(keyKeyCheck, k.check); err != nil {
			return fmt.Errorf("put key_check: %w", err)
		}
	}
	if !st.hasCreated {
		if err := meta.Put(keyCreated, []byte(now.UTC().Format(time.RFC3339))); err != nil {
			return fmt.Errorf("put created: %w", err)
		}
	}
	return nil
}

// metaUint reads a decimal meta value; absent is 0.
func metaUint(meta *bolt.Bucket, key []byte) (uint64, error) {
	v := meta.Get(key)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 63)
	if err != nil {
		return 0, fmt.Errorf("meta %s %.20q is not a number (database damaged?)", key, v)
	}
	return n, nil
}

func putMetaUint(tx *bolt.Tx, key []byte, n uint64) error {
	if err := tx.Bucket(bucketMeta).Put(key, strconv.AppendUint(nil, n, 10)); err != nil {
		return fmt.Errorf("put meta %s: %w", key, err)
	}
	return nil
}
