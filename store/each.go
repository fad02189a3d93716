package store

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// HashedEnrollLink is an enrollment link with the hash it is stored
// under: what moving links from one database to another needs.
type HashedEnrollLink struct {
	Hash []byte
	Link EnrollLink
}

// ForEach calls fn for every user in name (byte) order, as List would
// return them, without holding them all in memory: for copying a large
// store elsewhere. An error from fn stops the walk and comes back as is.
func (db *DB) ForEach(ctx context.Context, fn func(u User) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: for each: %w", err)
	}
	logged, err := db.snapshot("for each")
	if err != nil {
		return err
	}
	var inner error
	err = db.bolt.View(func(tx *bolt.Tx) error {
		b, err := usersBucket(tx)
		if err != nil {
			return err
		}
		n := 0
		inner = b.ForEach(func(k, v []byte) error {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("store: for each: %w", err)
				}
			}
			if l, ok := logged[string(k)]; ok {
				v = l.data
			}
			u, err := db.decode(string(k), v)
			if err != nil {
				return fmt.Errorf("store: for each: user %q: %w", k, err)
			}
			return fn(u)
		})
		return inner
	})
	if err != nil && inner == nil {
		return opError("for each", "", err)
	}
	return err
}

// ForEachEnrollLink calls fn for every stored enrollment link with its
// hash (expired ones too).
func (db *DB) ForEachEnrollLink(ctx context.Context, fn func(l HashedEnrollLink) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: for each enrollment link: %w", err)
	}
	return db.readTx("for each enrollment link", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLinks)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			l, err := DecodeEnrollLink(v)
			if err != nil {
				return fmt.Errorf("store: for each enrollment link: %w", err)
			}
			return fn(HashedEnrollLink{Hash: bytes.Clone(k), Link: l})
		})
	})
}

// ImportEnrollLinks stores links in one transaction, or none. Unlike
// PutEnrollLink it does not look for the user's other links: it is for
// filling a database that has none, from one that kept one per user.
func (db *DB) ImportEnrollLinks(ctx context.Context, links []HashedEnrollLink) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: import enrollment links: %w", err)
	}
	type item struct{ hash, data []byte }
	items := make([]item, 0, len(links))
	for _, l := range links {
		if err := CheckLinkHash("import enrollment links", l.Hash); err != nil {
			return err
		}
		if err := ValidateName(l.Link.User); err != nil {
			return fmt.Errorf("store: import enrollment links: %w", err)
		}
		data, err := EncodeEnrollLink(l.Link)
		if err != nil {
			return fmt.Errorf("store: import enrollment links: %w", err)
		}
		items = append(items, item{l.Hash, data})
	}
	if len(items) == 0 {
		return nil
	}
	return db.writeTx("import enrollment links", "", func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLinks)
		if err != nil {
			return fmt.Errorf("store: import enrollment links: %w", err)
		}
		for _, it := range items {
			if err := b.Put(it.hash, it.data); err != nil {
				return fmt.Errorf("store: import enrollment links: %w", err)
			}
		}
		return nil
	})
}
