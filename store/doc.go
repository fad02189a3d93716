// Package store persists otpgate users, password hashes, encrypted TOTP seeds,
// replay and lockout state, and hashed recovery codes.
//
// The first implementation is bbolt (see Open). Seeds are encrypted at rest with
// AES-256-GCM under a key file; every other package sees plaintext seeds only in
// memory, through the User type.
//
// # Layout
//
// One bbolt file with two buckets. meta holds schema_version (decimal),
// key_check (an HMAC proving the key file belongs to this database) and
// created. users maps a name to a record (a compact binary form since schema
// 2, see recordbin.go; schema 1 wrote JSON, which is still read): the User
// fields, with the TOTP secret only as the sealed seed = nonce ||
// AES-256-GCM(seed), whose additional
// data is "otpgate/seed/v1\x00" + name, so a seed moved into another user's
// record fails to decrypt. Recovery codes are stored as HashRecoveryCode
// values (HMAC-SHA256 under a key derived from the master key).
//
// # Key file
//
// The key file (default seed.key beside the database) holds 32 random bytes.
// Open creates it, mode 0600, only when the database has no key_check and no
// seeds; it never replaces a key. Open fails with ErrMissingKey when the file
// is gone but the database needs it, ErrWrongKey when it does not match, and
// with an error naming the file and the fix when it is readable by group or
// others or has the wrong size. Back it up separately from the database.
//
// # Locking and durability
//
// bbolt takes an exclusive lock on the file, so one process (normally
// otpgated) owns the database; a second Open waits Options.LockTimeout and
// then fails with ErrLocked. Every write is committed and fsynced before the
// method returns; a failed write (including a full disk) leaves the previous
// state intact.
//
// Writes use group commit: one goroutine runs the write transactions back
// to back, and all writes that queued while the previous transaction was
// being fsynced share the next one, so many concurrent logins cost about one
// fsync instead of one each. Each write still sees the effects of the writes
// before it, and a write that fails leaves no trace and does not fail the
// others in its transaction (see commit.go). Update is optimistic: its
// function runs on the caller's goroutine against a snapshot, and the
// committer only checks that the stored bytes are unchanged before it puts
// the result (else it runs the function again on the fresh record), so the
// serial stage does a compare and a put per login, not a decode and encode.
//
// A batch made only of Updates (logins) is not a bbolt transaction: its
// records are appended to a write-ahead log beside the database
// (<db>-wal, wal.go) with one durable write (on Linux with direct I/O,
// walwrite_linux.go), served from memory, and copied
// into bbolt by a background checkpoint every few thousand records. Open
// replays the log a crash left; every other write, Backup and Close put it
// into bbolt first.
//
// # Schema versions
//
// meta/schema_version is the layout version (currentSchema). Open runs the
// pending migration steps, each from version N to N+1, in one transaction;
// a database from a newer otpgate is refused with ErrNewerSchema. A database
// without schema_version is version 0 (the pre-versioned layout).
package store
