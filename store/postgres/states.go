package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/otpgate/otpgate/store"
)

// The statements of PutState but its INSERT, each seeing what the one
// before it did. Each locks only the rows it deletes and skips rows
// another put or a take holds rather than wait for them: no put waits for
// another, so concurrent puts cannot deadlock, and a row someone else is
// deleting goes anyway.
const (
	// sweepStates: the States expired a while ago (a minute of leeway for
	// the nodes' clocks; index challenge_states_expires).
	sweepStates = `DELETE FROM challenge_states WHERE state IN (
		SELECT state FROM challenge_states WHERE expires < now() - interval '1 minute'
		FOR UPDATE SKIP LOCKED)`
	// A bound keeps the newest States (latest expires, the State itself
	// breaking a tie) and deletes the rest. The middle SELECT locks only
	// the rows past the bound: FOR UPDATE on the OFFSET query itself
	// would lock the kept ones too.
	//
	// trimUser: the user's own oldest beyond $2 (index challenge_states_user).
	trimUser = `DELETE FROM challenge_states WHERE state IN (
		SELECT state FROM challenge_states WHERE state IN (
			SELECT state FROM challenge_states WHERE user_name = $1 ORDER BY expires DESC, state DESC OFFSET $2)
		FOR UPDATE SKIP LOCKED)`
	// trimClient: the client's own oldest beyond $2 (index
	// challenge_states_client).
	trimClient = `DELETE FROM challenge_states WHERE state IN (
		SELECT state FROM challenge_states WHERE state IN (
			SELECT state FROM challenge_states WHERE client = $1 ORDER BY expires DESC, state DESC OFFSET $2)
		FOR UPDATE SKIP LOCKED)`
	// trimTotal: past $1 States in all, the oldest of the client that
	// holds the most (of two, the one with the older oldest). The table
	// is counted on every put: it holds at most $1 rows, and as many as
	// the logins under way when nobody floods. The client is looked for
	// only when the table is over (LIMIT 0 reads nothing below it).
	trimTotal = `DELETE FROM challenge_states WHERE state IN (
		SELECT state FROM challenge_states WHERE client = (
			SELECT client FROM challenge_states GROUP BY client ORDER BY count(*) DESC, min(expires) LIMIT 1)
		ORDER BY expires, state
		LIMIT greatest((SELECT count(*) FROM challenge_states) - $1, 0)
		FOR UPDATE SKIP LOCKED)`
)

// PutState stores a challenge State for every node (auth.StateStore) and
// keeps the table within limits by the rules of auth's in-memory table:
// the user's own oldest, then the client's own oldest, then the biggest
// client's oldest go. Expired States are swept here too, so the table
// stays about as large as the logins under way. All of it is one batch:
// one round trip, one implicit transaction.
func (db *DB) PutState(ctx context.Context, state []byte, user, client string, info []byte, expires time.Time, limits store.StateLimits) error {
	if err := db.usable("put state"); err != nil {
		return err
	}
	if limits.PerUser < 1 || limits.PerClient < 1 || limits.Total < 1 {
		// A zero bound would delete every State, the new one too.
		return fmt.Errorf("store: put state: limits %+v: every bound must be at least 1", limits)
	}
	if info == nil {
		info = []byte{} // a login code challenge; the column is NOT NULL
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(sweepStates)
	b.Queue("INSERT INTO challenge_states (state, user_name, client, info, expires) VALUES ($1, $2, $3, $4, $5)",
		state, user, client, info, expires)
	b.Queue(trimUser, user, limits.PerUser)
	b.Queue(trimClient, client, limits.PerClient)
	b.Queue(trimTotal, limits.Total)
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return opErr("put state", user, err)
	}
	return nil
}

// TakeState removes a challenge State (auth.StateStore): one DELETE ...
// RETURNING, so of the nodes that race for it one gets it.
func (db *DB) TakeState(ctx context.Context, state []byte, now time.Time) (user, client string, info []byte, ok bool, err error) {
	if err := db.usable("take state"); err != nil {
		return "", "", nil, false, err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var expires time.Time
	err = db.pool.QueryRow(ctx, "DELETE FROM challenge_states WHERE state = $1 RETURNING user_name, client, info, expires", state).
		Scan(&user, &client, &info, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil, false, nil
	}
	if err != nil {
		return "", "", nil, false, opErr("take state", "", err)
	}
	if !now.Before(expires) {
		return "", "", nil, false, nil
	}
	return user, client, info, true, nil
}
