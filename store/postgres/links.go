package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/otpgate/otpgate/store"
)

// putLinkTx writes one link (data is its JSON) and removes the user's
// other links: a user has at most one live link.
func putLinkTx(ctx context.Context, tx pgx.Tx, hash, data []byte) error {
	l, err := store.DecodeEnrollLink(data)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM enroll_links WHERE user_name = $1 OR hash = $2", l.User, hash); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO enroll_links (hash, user_name, expires, data) VALUES ($1, $2, $3, $4)", hash, l.User, l.Expires, data)
	return err
}

// PutEnrollLink implements store.EnrollLinks.
func (db *DB) PutEnrollLink(ctx context.Context, hash []byte, l store.EnrollLink) error {
	if err := db.usable("put enrollment link"); err != nil {
		return err
	}
	if err := store.CheckLinkHash("put enrollment link", hash); err != nil {
		return err
	}
	if err := store.ValidateName(l.User); err != nil {
		return opErr("put enrollment link", "", err)
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	data, err := store.EncodeEnrollLink(l)
	if err != nil {
		return opErr("put enrollment link", "", err)
	}
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Serialise puts for one user, so two never both survive.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", l.User); err != nil {
			return err
		}
		return putLinkTx(ctx, tx, hash, data)
	})
	if err != nil {
		return opErr("put enrollment link", "", err)
	}
	return nil
}

// GetEnrollLink implements store.EnrollLinks.
func (db *DB) GetEnrollLink(ctx context.Context, hash []byte) (store.EnrollLink, error) {
	if err := db.usable("get enrollment link"); err != nil {
		return store.EnrollLink{}, err
	}
	if err := store.CheckLinkHash("get enrollment link", hash); err != nil {
		return store.EnrollLink{}, err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var data []byte
	err := db.pool.QueryRow(ctx, "SELECT data FROM enroll_links WHERE hash = $1", hash).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.EnrollLink{}, fmt.Errorf("store: get enrollment link: %w", store.ErrLinkNotFound)
	}
	if err != nil {
		return store.EnrollLink{}, opErr("get enrollment link", "", err)
	}
	l, err := store.DecodeEnrollLink(data)
	if err != nil {
		return store.EnrollLink{}, opErr("get enrollment link", "", err)
	}
	return l, nil
}

// UpdateEnrollLink implements store.EnrollLinks (row locked while fn runs).
func (db *DB) UpdateEnrollLink(ctx context.Context, hash []byte, fn func(l *store.EnrollLink) (bool, error)) error {
	if err := db.usable("update enrollment link"); err != nil {
		return err
	}
	if err := store.CheckLinkHash("update enrollment link", hash); err != nil {
		return err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	var fnErr error
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var data []byte
		err := tx.QueryRow(ctx, "SELECT data FROM enroll_links WHERE hash = $1 FOR UPDATE", hash).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrLinkNotFound
		}
		if err != nil {
			return err
		}
		l, err := store.DecodeEnrollLink(data)
		if err != nil {
			return err
		}
		user := l.User
		remove, err := fn(&l)
		if err != nil {
			fnErr = err
			return err
		}
		if remove {
			_, err := tx.Exec(ctx, "DELETE FROM enroll_links WHERE hash = $1", hash)
			return err
		}
		if l.User != user {
			return errors.New("the update moved the link to another user")
		}
		if data, err = store.EncodeEnrollLink(l); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE enroll_links SET data = $2, expires = $3 WHERE hash = $1", hash, data, l.Expires)
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return opErr("update enrollment link", "", err)
	}
	return nil
}

// ListEnrollLinks implements store.EnrollLinks.
func (db *DB) ListEnrollLinks(ctx context.Context) ([]store.EnrollLink, error) {
	if err := db.usable("list enrollment links"); err != nil {
		return nil, err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT data FROM enroll_links")
	if err != nil {
		return nil, opErr("list enrollment links", "", err)
	}
	defer rows.Close()
	links := []store.EnrollLink{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, opErr("list enrollment links", "", err)
		}
		l, err := store.DecodeEnrollLink(data)
		if err != nil {
			return nil, opErr("list enrollment links", "", err)
		}
		links = append(links, l)
	}
	if err := rows.Err(); err != nil {
		return nil, opErr("list enrollment links", "", err)
	}
	return links, nil
}

// PruneEnrollLinks implements store.EnrollLinks.
func (db *DB) PruneEnrollLinks(ctx context.Context, now time.Time) (int, error) {
	if err := db.usable("prune enrollment links"); err != nil {
		return 0, err
	}
	ctx, cancel := db.opContext(ctx)
	defer cancel()
	tag, err := db.pool.Exec(ctx, "DELETE FROM enroll_links WHERE expires <= $1", now)
	if err != nil {
		return 0, opErr("prune enrollment links", "", err)
	}
	return int(tag.RowsAffected()), nil
}
