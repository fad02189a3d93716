package store

import (
	"errors"
	"fmt"
	"os"
)

// Codec turns users into the bytes a backend stores and back, sealing the
// seeds with the key file's key exactly as the bbolt backend does, so
// another backend (store/postgres) shares the record format, the key file
// and its key check without reimplementing any of the cryptography.
type Codec struct{ k *keyring }

// OpenCodec reads the key file; with create, a missing file is created
// (mode 0600) the way Open does for a new database.
func OpenCodec(keyFile string, create bool) (*Codec, error) {
	master, err := readKeyFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("store: key file %s not found: %w", keyFile, ErrMissingKey)
		}
		master, err = createKeyFile(keyFile)
	}
	if err != nil {
		return nil, err
	}
	k, err := newKeyring(master)
	clear(master)
	if err != nil {
		return nil, err
	}
	return &Codec{k: k}, nil
}

// KeyCheck is the value a database stores to prove, at the next start,
// that the key file is the one its seeds were sealed with.
func (c *Codec) KeyCheck() []byte { return append([]byte(nil), c.k.check...) }

// Matches reports whether check is this key's KeyCheck.
func (c *Codec) Matches(check []byte) bool { return c.k.matches(check) }

// Encode validates u and returns its stored form (seeds sealed).
func (c *Codec) Encode(u *User) ([]byte, error) { return encodeRecord(c.k, u) }

// Decode parses what Encode returned for the user name.
func (c *Codec) Decode(name string, data []byte) (User, error) {
	return decodeRecord(c.k, name, data)
}

// HashRecoveryCode implements Store.HashRecoveryCode for any backend.
func (c *Codec) HashRecoveryCode(name, code string) string { return c.k.hashRecoveryCode(name, code) }
