package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/otpgate/otpgate/store"
)

// migrations[i] takes the schema from version i to i+1; currentSchema is
// what this program writes. A migration runs in the transaction that
// holds the migration lock and bumps schema_version, so it is all or
// nothing and one node at a time.
var migrations = []string{
	// 0 -> 1: users, enrollment links, the nodes that run on the database,
	// and the challenge States auth shares between nodes.
	`CREATE TABLE users (
		name   text PRIMARY KEY,
		record bytea NOT NULL -- store.Codec's record, seeds sealed with the key file
	);
	CREATE TABLE enroll_links (
		hash      bytea PRIMARY KEY,
		user_name text NOT NULL,
		expires   timestamptz NOT NULL,
		data      bytea NOT NULL
	);
	CREATE INDEX enroll_links_user ON enroll_links (user_name);
	CREATE TABLE nodes (
		node   text PRIMARY KEY,
		schema integer NOT NULL,
		seen   timestamptz NOT NULL
	);
	CREATE TABLE challenge_states (
		state     bytea PRIMARY KEY,
		user_name text NOT NULL,
		client    text NOT NULL,
		info      bytea NOT NULL DEFAULT '',
		expires   timestamptz NOT NULL
	);
	CREATE INDEX challenge_states_expires ON challenge_states (expires);`,
	// 1 -> 2: a revision per user row, so Update can write without holding
	// a row lock across the round trips of a login (a compare-and-swap).
	// From a sequence: a user deleted and created again between a read
	// and its write does not get the revision the read saw. Pages keep
	// room so a login's update stays on its page (HOT, no index write);
	// set first, so the rewrite that fills the new column leaves that
	// room in the pages of an existing table too.
	`CREATE SEQUENCE users_revision;
	ALTER TABLE users SET (fillfactor = 70);
	ALTER TABLE users ADD COLUMN revision bigint NOT NULL DEFAULT nextval('users_revision');`,
	// 2 -> 3: the password backoff per user and station, shared by the
	// nodes (auth.PasswordBackoffStore): one row per user name as typed
	// (any bytes, known user or not), auth's encoding of its stations,
	// when the row stops mattering (swept after), and a version from a
	// sequence that never repeats, for the compare-and-swap. An early
	// 0 -> 1 created a password_backoff table of another shape that
	// nothing used; it goes.
	`DROP TABLE IF EXISTS password_backoff;
	CREATE SEQUENCE password_backoff_version;
	CREATE TABLE password_backoff (
		user_name bytea PRIMARY KEY,
		backoff   bytea NOT NULL,
		forget_at timestamptz NOT NULL,
		version   bigint NOT NULL DEFAULT nextval('password_backoff_version')
	);
	CREATE INDEX password_backoff_forget_at ON password_backoff (forget_at);`,
	// 3 -> 4: the challenge States bounded per user and per RADIUS client
	// as in auth's memory (PutState, store.StateLimits): each bound finds
	// its newest States and the rest, oldest first, on an index in the
	// order it keeps them (expires, then the State to break a tie).
	`CREATE INDEX challenge_states_user ON challenge_states (user_name, expires, state);
	CREATE INDEX challenge_states_client ON challenge_states (client, expires, state);`,
}

// currentSchema is the schema version this program reads and writes.
var currentSchema = len(migrations)

// migrationLock is the advisory lock key nodes take to create or migrate
// the schema ("otpgate" in ASCII).
const migrationLock = 0x6f7470676174

// nodeAlive: a node that has written its heartbeat this recently is
// running; a node of another schema version refuses to migrate under it.
const (
	heartbeatEvery = 10 * time.Second
	nodeAlive      = 3 * heartbeatEvery
)

// ErrOtherVersionRunning: a migration was refused because a node of
// another schema version is running on the database.
var ErrOtherVersionRunning = errors.New("store: postgres: a node of another schema version is running on this database")

// init creates or migrates the schema and proves the key, under the
// migration lock.
func (db *DB) init(ctx context.Context, keyFile string) error {
	host, _ := os.Hostname()
	var rnd [4]byte
	rand.Read(rnd[:])
	db.node = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(rnd[:]))
	db.schema = currentSchema
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("store: postgres: migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			id        integer PRIMARY KEY CHECK (id = 1),
			version   integer NOT NULL,
			key_check bytea NOT NULL,
			migrated  timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("store: postgres: schema_version: %w", err)
		}
		var version int
		var check []byte
		err := tx.QueryRow(ctx, "SELECT version, key_check FROM schema_version WHERE id = 1").Scan(&version, &check)
		fresh := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !fresh {
			return fmt.Errorf("store: postgres: read schema_version: %w", err)
		}
		if version > db.schema {
			return fmt.Errorf("store: postgres: %w: the database has schema version %d but this otpgate supports up to %d; upgrade this node",
				store.ErrNewerSchema, version, db.schema)
		}
		codec, err := store.OpenCodec(keyFile, fresh)
		if errors.Is(err, store.ErrMissingKey) {
			return fmt.Errorf("store: postgres: the database holds seeds sealed with a key but the key file %s is missing: %w; copy it from another node (a new key would not help)", keyFile, err)
		}
		if err != nil {
			return err
		}
		if !fresh && !codec.Matches(check) {
			return fmt.Errorf("store: postgres: key file %s: %w: every node must have the same key file (copy it from a node that works)", keyFile, store.ErrWrongKey)
		}
		db.codec = codec
		if fresh {
			if _, err := tx.Exec(ctx, "INSERT INTO schema_version (id, version, key_check) VALUES (1, 0, $1)", codec.KeyCheck()); err != nil {
				return fmt.Errorf("store: postgres: init schema_version: %w", err)
			}
		}
		if version < db.schema && version > 0 {
			// Nodes running now read the old schema: migrating under
			// them would break them mid-login.
			var running string
			err := tx.QueryRow(ctx, "SELECT node FROM nodes WHERE seen > now() - $1::interval LIMIT 1", nodeAlive.String()).Scan(&running)
			if err == nil {
				return fmt.Errorf("store: postgres: migrate from schema %d to %d: %w: %s; stop the other nodes, start one upgraded node, then upgrade the others",
					version, db.schema, ErrOtherVersionRunning, running)
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("store: postgres: migrate: %w", err)
			}
		}
		for v := version; v < db.schema; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("store: postgres: migrate schema %d to %d: %w", v, v+1, err)
			}
		}
		if version != db.schema {
			if _, err := tx.Exec(ctx, "UPDATE schema_version SET version = $1, migrated = now() WHERE id = 1", db.schema); err != nil {
				return fmt.Errorf("store: postgres: bump schema_version: %w", err)
			}
		}
		return db.beatTx(ctx, tx)
	})
}

func (db *DB) beatTx(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `INSERT INTO nodes (node, schema, seen) VALUES ($1, $2, now())
		ON CONFLICT (node) DO UPDATE SET schema = $2, seen = now()`, db.node, db.schema)
	if err != nil {
		return fmt.Errorf("store: postgres: register node: %w", err)
	}
	_, err = tx.Exec(ctx, "DELETE FROM nodes WHERE seen < now() - interval '1 day'")
	return err
}

// heartbeat keeps this node's row in nodes fresh, so that a node of
// another version does not migrate the schema under it, and sweeps the
// password backoff rows that no longer matter.
func (db *DB) heartbeat() {
	defer close(db.done)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			db.pool.Exec(ctx, "DELETE FROM nodes WHERE node = $1", db.node)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), heartbeatEvery)
			_, err := db.pool.Exec(ctx, "UPDATE nodes SET seen = now(), schema = $2 WHERE node = $1", db.node, db.schema)
			if err != nil {
				db.log.Warn("store: postgres: heartbeat", "err", err)
			} else if _, err := db.sweepPasswordBackoff(ctx); err != nil {
				db.log.Warn("store: postgres: sweep", "err", err)
			}
			cancel()
		}
	}
}
