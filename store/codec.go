package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
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

// Apply is one update of a stored record, the same for every backend:
// it decodes rec (stored under name), runs fn on the user, refuses a
// rename and returns the record to store. A seed fn left as it was keeps
// its stored ciphertext instead of being sealed again, so a login that
// changes only counters costs no nonce and no AES-GCM seal. Errors from fn
// come back as they are; the others name no operation (the caller does).
func (c *Codec) Apply(name string, rec []byte, fn func(u *User) error) ([]byte, error) {
	_, _, data, err := applyRecord(c.k, 0, name, rec, fn)
	return data, err
}

// applyRecord is Apply that also returns the user before and after fn,
// with the fence's floor (fence.go; 0: none) applied before fn runs.
func applyRecord(k *keyring, floor int64, name string, rec []byte, fn func(u *User) error) (before, after *User, data []byte, err error) {
	var prev sealedSeeds
	u, err := decodeRecordSealed(k, name, rec, &prev)
	if err != nil {
		return nil, nil, nil, err
	}
	applyFloor(&u, floor)
	old := u
	old.TOTP, old.PendingTOTP = cloneTOTP(u.TOTP), cloneTOTP(u.PendingTOTP)
	old.Groups, old.RecoveryCodes = slices.Clone(u.Groups), slices.Clone(u.RecoveryCodes)
	if err := fn(&u); err != nil {
		return nil, nil, nil, err
	}
	if u.Name != name {
		return nil, nil, nil, fmt.Errorf("the update renamed the user to %.64q; renaming is not supported", u.Name)
	}
	data, err = encodeRecordReusing(k, &u, &prev)
	if err != nil {
		return nil, nil, nil, err
	}
	return &old, &u, data, nil
}

// HashRecoveryCode implements Store.HashRecoveryCode for any backend.
func (c *Codec) HashRecoveryCode(name, code string) string { return c.k.hashRecoveryCode(name, code) }
