package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// statesPerUser bounds the pending challenge States of one user: a new
// one pushes out the oldest beyond it (as the in-memory table does).
const statesPerUser = 4

// PutState stores a challenge State for every node (auth.StateStore).
// Expired States are swept here, so the table stays about as large as
// the logins under way.
func (db *DB) PutState(ctx context.Context, state []byte, user, client string, info []byte, expires time.Time) error {
	if err := db.usable("put state"); err != nil {
		return err
	}
	if info == nil {
		info = []byte{} // a login code challenge; the column is NOT NULL
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO challenge_states (state, user_name, client, info, expires) VALUES ($1, $2, $3, $4, $5)",
			state, user, client, info, expires); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM challenge_states WHERE user_name = $1 AND state NOT IN
			(SELECT state FROM challenge_states WHERE user_name = $1 ORDER BY expires DESC LIMIT $2)`, user, statesPerUser); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "DELETE FROM challenge_states WHERE expires < now() - interval '1 minute'")
		return err
	})
	if err != nil {
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
