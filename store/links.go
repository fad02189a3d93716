package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLinkNotFound: no enrollment link has that hash (never issued, used,
// killed by wrong codes, replaced or pruned).
var ErrLinkNotFound = errors.New("store: enrollment link not found")

// LinkHashSize is the size of the key an enrollment link is stored under:
// SHA-256 of the token. The token itself is never stored.
const LinkHashSize = 32

// EnrollLink is a one-time enrollment link as stored: whose it is, until
// when it works and how many wrong codes were typed on its page.
type EnrollLink struct {
	User     string    `json:"user"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Attempts int       `json:"attempts,omitempty"` // wrong codes so far
	// Begun: the page has started an enrollment (a pending token) for the
	// user, which later visits show again instead of making a new secret.
	Begun bool `json:"begun,omitempty"`
}

// EnrollLinks is the store of one-time enrollment links, kept in a bucket
// of its own (schema 3). *DB implements it.
type EnrollLinks interface {
	// PutEnrollLink stores l under hash and removes the user's other
	// links: a user has at most one live link.
	PutEnrollLink(ctx context.Context, hash []byte, l EnrollLink) error
	// GetEnrollLink returns the link stored under hash, or ErrLinkNotFound.
	GetEnrollLink(ctx context.Context, hash []byte) (EnrollLink, error)
	// UpdateEnrollLink runs fn on the link under hash in one transaction;
	// fn returning remove=true deletes the link, else the changed link is
	// written. An error from fn writes nothing and comes back as is.
	UpdateEnrollLink(ctx context.Context, hash []byte, fn func(l *EnrollLink) (remove bool, err error)) error
	// ListEnrollLinks returns every stored link (expired ones too).
	ListEnrollLinks(ctx context.Context) ([]EnrollLink, error)
	// PruneEnrollLinks deletes links expired at now and returns how many.
	PruneEnrollLinks(ctx context.Context, now time.Time) (int, error)
}

var _ EnrollLinks = (*DB)(nil)

var bucketLinks = []byte("enroll_links")

func createLinksBucket(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketLinks); err != nil {
		return fmt.Errorf("create bucket enroll_links: %w", err)
	}
	return nil
}

// CheckLinkHash refuses a hash that is not LinkHashSize bytes as a link
// that does not exist (ErrLinkNotFound), for every backend.
func CheckLinkHash(op string, hash []byte) error {
	if len(hash) != LinkHashSize {
		return fmt.Errorf("store: %s: link hash is %d bytes, want %d: %w", op, len(hash), LinkHashSize, ErrLinkNotFound)
	}
	return nil
}

// EncodeEnrollLink returns l as every backend stores it (JSON).
func EncodeEnrollLink(l EnrollLink) ([]byte, error) {
	data, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("encode enrollment link: %w", err)
	}
	return data, nil
}

// DecodeEnrollLink parses what EncodeEnrollLink returned.
func DecodeEnrollLink(data []byte) (EnrollLink, error) {
	var l EnrollLink
	if err := json.Unmarshal(data, &l); err != nil {
		return EnrollLink{}, fmt.Errorf("decode enrollment link: %w", err)
	}
	return l, nil
}

// PutEnrollLink implements EnrollLinks.
func (db *DB) PutEnrollLink(ctx context.Context, hash []byte, l EnrollLink) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put enrollment link: %w", err)
	}
	if err := CheckLinkHash("put enrollment link", hash); err != nil {
		return err
	}
	if err := ValidateName(l.User); err != nil {
		return fmt.Errorf("store: put enrollment link: %w", err)
	}
	data, err := EncodeEnrollLink(l)
	if err != nil {
		return fmt.Errorf("store: put enrollment link: %w", err)
	}
	return db.writeTx("put enrollment link", l.User, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLinks)
		if err != nil {
			return fmt.Errorf("store: put enrollment link: %w", err)
		}
		var old [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if o, err := DecodeEnrollLink(v); err == nil && o.User == l.User || bytes.Equal(k, hash) {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("store: put enrollment link: %w", err)
			}
		}
		if err := b.Put(hash, data); err != nil {
			return fmt.Errorf("store: put enrollment link: %w", err)
		}
		return nil
	})
}

// GetEnrollLink implements EnrollLinks.
func (db *DB) GetEnrollLink(ctx context.Context, hash []byte) (EnrollLink, error) {
	if err := ctx.Err(); err != nil {
		return EnrollLink{}, fmt.Errorf("store: get enrollment link: %w", err)
	}
	if err := CheckLinkHash("get enrollment link", hash); err != nil {
		return EnrollLink{}, err
	}
	var l EnrollLink
	err := db.readTx("get enrollment link", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		var v []byte
		if b != nil {
			v = b.Get(hash)
		}
		if v == nil {
			return fmt.Errorf("store: get enrollment link: %w", ErrLinkNotFound)
		}
		var err error
		l, err = DecodeEnrollLink(v)
		return err
	})
	return l, err
}

// UpdateEnrollLink implements EnrollLinks.
func (db *DB) UpdateEnrollLink(ctx context.Context, hash []byte, fn func(l *EnrollLink) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: update enrollment link: %w", err)
	}
	if err := CheckLinkHash("update enrollment link", hash); err != nil {
		return err
	}
	return db.writeTx("update enrollment link", "", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		var v []byte
		if b != nil {
			v = b.Get(hash)
		}
		if v == nil {
			return fmt.Errorf("store: update enrollment link: %w", ErrLinkNotFound)
		}
		l, err := DecodeEnrollLink(v)
		if err != nil {
			return fmt.Errorf("store: update enrollment link: %w", err)
		}
		user := l.User
		remove, err := fn(&l)
		if err != nil {
			return err
		}
		if remove {
			if err := b.Delete(hash); err != nil {
				return fmt.Errorf("store: delete enrollment link: %w", err)
			}
			return nil
		}
		if l.User != user {
			return fmt.Errorf("store: update enrollment link: the update moved the link to another user")
		}
		data, err := EncodeEnrollLink(l)
		if err != nil {
			return fmt.Errorf("store: update enrollment link: %w", err)
		}
		if err := b.Put(hash, data); err != nil {
			return fmt.Errorf("store: update enrollment link: %w", err)
		}
		return nil
	})
}

// ListEnrollLinks implements EnrollLinks.
func (db *DB) ListEnrollLinks(ctx context.Context) ([]EnrollLink, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: list enrollment links: %w", err)
	}
	links := []EnrollLink{}
	err := db.readTx("list enrollment links", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			l, err := DecodeEnrollLink(v)
			if err != nil {
				return fmt.Errorf("store: list enrollment links: %w", err)
			}
			links = append(links, l)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return links, nil
}

// PruneEnrollLinks implements EnrollLinks. A record that does not decode
// is removed too: nothing could ever use it.
func (db *DB) PruneEnrollLinks(ctx context.Context, now time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: prune enrollment links: %w", err)
	}
	var stale [][]byte
	err := db.readTx("prune enrollment links", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if l, err := DecodeEnrollLink(v); err != nil || !now.Before(l.Expires) {
				stale = append(stale, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil || len(stale) == 0 {
		return 0, err
	}
	n := 0
	err = db.writeTx("prune enrollment links", "", func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketLinks)
		for _, k := range stale {
			v := b.Get(k)
			if v == nil {
				continue
			}
			if l, err := DecodeEnrollLink(v); err == nil && now.Before(l.Expires) {
				continue // replaced meanwhile
			}
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("store: prune enrollment links: %w", err)
			}
			n++
		}
		return nil
	})
	return n, err
}

// readTx runs fn in a bbolt read transaction. Links never go through the
// login log, so bbolt alone holds them.
func (db *DB) readTx(op string, fn func(tx *bolt.Tx) error) error {
	db.mu.Lock()
	err := db.usable(op, false)
	db.mu.Unlock()
	if err != nil {
		return err
	}
	var inner error
	err = db.bolt.View(func(tx *bolt.Tx) error {
		inner = fn(tx)
		return inner
	})
	if err != nil && inner == nil {
		return opError(op, "", err)
	}
	return err
}
