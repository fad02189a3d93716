// Package store persists otpgate users, password hashes, encrypted TOTP seeds,
// replay and lockout state, and hashed recovery codes.
//
// Store is the seam the rest of otpgate uses; package storetest is the
// suite every backend passes. The first backend is bbolt (see Open). Seeds
// are encrypted at rest with AES-256-GCM under a key file; every other
// package sees plaintext seeds only in memory, through the User type.
//
// # Layout
//
// One bbolt file with three buckets. meta holds schema_version (decimal),
// key_check (an HMAC proving the key file belongs to this database),
// created, and for the login log and the fence db_id, log_applied, fence,
// running and refuse_until (schema.go). users maps a name to a record (a
// compact binary form since schema 2, see recordbin.go; schema 1 wrote
// JSON, which is still read): the User fields, with the TOTP secret only as
// the sealed seed = nonce || AES-256-GCM(seed), whose additional data is
// "otpgate/seed/v1\x00" + name, so a seed moved into another user's record
// fails to decrypt. enroll_links (schema 3, links.go) maps the SHA-256 of a
// one-time enrollment link's token to its user, expiry and attempts. Recovery codes are stored as HashRecoveryCode
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
// otpgated) owns the database for writing; a second Open waits
// Options.LockTimeout and then fails with ErrLocked. Options.ReadOnly opens
// it without writing anything (a shared lock, no login log, no key file).
//
// UpdateLogin writes a login's bookkeeping to the login log (logins.go,
// package loginlog): in the page cache when it returns, on disk about a
// second later, in bbolt at the next checkpoint. The time fence (fence.go)
// makes a power loss refuse every step the lost records might have
// accepted. Every other write is one synced bbolt transaction before the
// method returns; a failed write (including a full disk) leaves the
// previous state intact. docs/durability.md states the contract.
//
// # Schema versions
//
// meta/schema_version is the layout version (currentSchema). Open runs the
// pending migration steps, each from version N to N+1, in one transaction;
// a database from a newer otpgate is refused with ErrNewerSchema. A database
// without schema_version is version 0 (the pre-versioned layout).
package store
