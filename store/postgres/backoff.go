package postgres

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// UpdatePasswordBackoff implements auth.PasswordBackoffStore without
// holding a transaction open in the common case: it reads the row, runs
// fn, then writes only if the row is still what it read (the version,
// from a sequence, changes with every write and never comes back), else
// runs fn again on what is there now (casWrite).
func (db *DB) UpdatePasswordBackoff(ctx context.Context, user string, fn func(old []byte) (next []byte, forgetAt time.Time, err error)) error {
	const op = "password backoff"
	if err := db.usable(op); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	r := backoffRound{key: []byte(user), fn: fn} // bytea: whatever a guesser typed
	err := db.casWrite(ctx, func(q querier, lock string) (bool, error) {
		err := r.run(ctx, q, lock)
		return r.done, err
	})
	switch {
	case r.fnErr != nil:
		return r.fnErr
	case err != nil:
		return opErr(op, user, err)
	}
	return nil
}

// backoffRound is one read, fn, conditional write of a user's row.
type backoffRound struct {
	key   []byte
	fn    func(old []byte) ([]byte, time.Time, error)
	done  bool  // the write landed, or there was nothing to write
	fnErr error // fn failed: returned as it is
}

// run reads the row (with lock: " FOR UPDATE"), runs fn and writes what
// it returns if the row is still as read. An error returned is the
// database's.
func (r *backoffRound) run(ctx context.Context, q querier, lock string) error {
	var old []byte
	var version int64
	err := q.QueryRow(ctx, "SELECT backoff, version FROM password_backoff WHERE user_name = $1"+lock, r.key).Scan(&old, &version)
	found := err == nil
	if errors.Is(err, pgx.ErrNoRows) {
		old, err = nil, nil
	}
	if err != nil {
		return err
	}
	next, forgetAt, err := r.fn(old)
	if err != nil {
		r.fnErr = err
		return err
	}
	var sql string
	var args []any
	switch {
	case !found && next == nil, found && next != nil && bytes.Equal(next, old):
		r.done = true // nothing changed
		return nil
	case !found:
		sql, args = "INSERT INTO password_backoff (user_name, backoff, forget_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			[]any{r.key, next, forgetAt}
	case next == nil:
		sql, args = "DELETE FROM password_backoff WHERE user_name = $1 AND version = $2", []any{r.key, version}
	default:
		sql, args = `UPDATE password_backoff SET backoff = $3, forget_at = $4, version = nextval('password_backoff_version')
			WHERE user_name = $1 AND version = $2`, []any{r.key, version, next, forgetAt}
	}
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	r.done = tag.RowsAffected() == 1
	return nil
}

// sweepBatch bounds the rows one sweep deletes, so a sweep after a flood
// of invented names stays a short statement.
const sweepBatch = 10000

// sweepPasswordBackoff deletes the rows whose forget_at has passed (by
// the database's clock, a minute late for the nodes' clocks): names a
// guesser typed do not stay in the table for ever. Each node's heartbeat
// runs it.
func (db *DB) sweepPasswordBackoff(ctx context.Context) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM password_backoff WHERE user_name IN
		(SELECT user_name FROM password_backoff WHERE forget_at < now() - interval '1 minute' LIMIT $1)`, sweepBatch)
	if err != nil {
		return 0, opErr("sweep password backoff", "", err)
	}
	return tag.RowsAffected(), nil
}
