package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxSeedLen bounds a TOTP secret; real ones are 10 (Google Authenticator)
// to 64 bytes (SHA-512 block-sized keys).
const maxSeedLen = 128

// record is the value stored under a user's name in the users bucket: binary
// since schema 2 (recordbin.go), JSON before. TOTP.Secret is never stored
// (json:"-"); the seed is stored only as
// SealedSeed, AES-GCM-encrypted with the user name as additional data. The
// pending seed (PendingTOTP.Secret) is stored the same way as
// SealedPendingSeed, under its own additional data (pendingSeedAAD), so it
// can't be moved into SealedSeed. Both fields are optional: records written
// before pending enrollments existed decode unchanged, and no schema bump
// is needed.
type record struct {
	User
	SealedSeed        []byte `json:"sealed_seed,omitempty"`
	SealedPendingSeed []byte `json:"sealed_pending_seed,omitempty"`
}

// validateUser checks what the store itself relies on.
func validateUser(u *User) error {
	if err := ValidateName(u.Name); err != nil {
		return err
	}
	if err := validateTOTP(u.Name, "totp", u.TOTP); err != nil {
		return err
	}
	return validateTOTP(u.Name, "pending totp", u.PendingTOTP)
}

func validateTOTP(name, what string, t *TOTP) error {
	if t == nil {
		return nil
	}
	switch {
	case len(t.Secret) == 0:
		return fmt.Errorf("store: user %q: %s secret is empty", name, what)
	case len(t.Secret) > maxSeedLen:
		return fmt.Errorf("store: user %q: %s secret is %d bytes, at most %d allowed", name, what, len(t.Secret), maxSeedLen)
	case t.Digits < 0 || t.Digits > 10:
		return fmt.Errorf("store: user %q: %s digits %d out of range", name, what, t.Digits)
	case t.Period < 0:
		return fmt.Errorf("store: user %q: %s period %d is negative", name, what, t.Period)
	}
	return nil
}

// encodeRecord validates u and returns its stored form.
func encodeRecord(k *keyring, u *User) ([]byte, error) {
	return encodeRecordReusing(k, u, nil)
}

// sealedSeeds is what decodeRecordSealed read: each seed as decrypted (a
// private copy) and the stored ciphertext it came from.
type sealedSeeds struct {
	seed, sealed               []byte
	pendingSeed, pendingSealed []byte
}

// encodeRecordReusing is encodeRecord that keeps a seed's stored ciphertext
// (prev, from the record u was decoded from) when the seed bytes did not
// change, instead of sealing them again. The ciphertext is bound to the
// user name by its additional data, and u.Name is the name it was stored
// under (the caller checks), so the kept ciphertext is exactly what a fresh
// seal would protect; it saves a random nonce and an AES-GCM seal per write.
func encodeRecordReusing(k *keyring, u *User, prev *sealedSeeds) ([]byte, error) {
	if err := validateUser(u); err != nil {
		return nil, err
	}
	r := record{User: *u}
	if u.TOTP != nil {
		if prev != nil && prev.sealed != nil && bytes.Equal(prev.seed, u.TOTP.Secret) {
			r.SealedSeed = prev.sealed
		} else {
			sealed, err := k.sealSeed(u.Name, u.TOTP.Secret)
			if err != nil {
				return nil, err
			}
			r.SealedSeed = sealed
		}
	}
	if u.PendingTOTP != nil {
		if prev != nil && prev.pendingSealed != nil && bytes.Equal(prev.pendingSeed, u.PendingTOTP.Secret) {
			r.SealedPendingSeed = prev.pendingSealed
		} else {
			sealed, err := k.sealPendingSeed(u.Name, u.PendingTOTP.Secret)
			if err != nil {
				return nil, err
			}
			r.SealedPendingSeed = sealed
		}
	}
	return marshalBinaryRecord(make([]byte, 0, 256), &r), nil
}

// decodeRecord parses the value stored under key name. The returned User
// shares no memory with data (bbolt values are only valid inside their
// transaction) and, since it is freshly decoded, none with any other caller.
func decodeRecord(k *keyring, name string, data []byte) (User, error) {
	return decodeRecordSealed(k, name, data, nil)
}

// decodeRecordSealed is decodeRecord that also fills prev (when not nil)
// with the seeds and their stored ciphertexts, for encodeRecordReusing. The
// seeds in prev are copies: changes fn makes to the User's secrets in place
// are seen as changes.
func decodeRecordSealed(k *keyring, name string, data []byte, prev *sealedSeeds) (User, error) {
	var r record
	if isBinaryRecord(data) {
		if err := unmarshalBinaryRecord(data, &r); err != nil {
			return User{}, fmt.Errorf("decode record: %w", err)
		}
	} else if err := json.Unmarshal(data, &r); err != nil {
		return User{}, fmt.Errorf("decode record: %w", err)
	}
	if r.Name != name {
		return User{}, fmt.Errorf("decode record: stored under %q but names %q", name, r.Name)
	}
	switch {
	case r.TOTP != nil && r.SealedSeed == nil:
		return User{}, errors.New("decode record: totp without an encrypted seed")
	case r.TOTP == nil && r.SealedSeed != nil:
		return User{}, errors.New("decode record: encrypted seed without totp settings")
	case r.TOTP != nil:
		seed, err := k.openSeed(name, r.SealedSeed)
		if err != nil {
			return User{}, fmt.Errorf("decode record: %w", err)
		}
		r.TOTP.Secret = seed
		if prev != nil {
			prev.seed, prev.sealed = bytes.Clone(seed), r.SealedSeed
		}
	}
	switch {
	case r.PendingTOTP != nil && r.SealedPendingSeed == nil:
		return User{}, errors.New("decode record: pending totp without an encrypted seed")
	case r.PendingTOTP == nil && r.SealedPendingSeed != nil:
		return User{}, errors.New("decode record: encrypted pending seed without pending totp settings")
	case r.PendingTOTP != nil:
		seed, err := k.openPendingSeed(name, r.SealedPendingSeed)
		if err != nil {
			return User{}, fmt.Errorf("decode record: pending seed: %w", err)
		}
		r.PendingTOTP.Secret = seed
		if prev != nil {
			prev.pendingSeed, prev.pendingSealed = bytes.Clone(seed), r.SealedPendingSeed
		}
	}
	return r.User, nil
}
