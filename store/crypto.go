package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/otpgate/otpgate/internal/safefile"
)

// KeySize is the length in bytes of the master key in the key file.
const KeySize = 32

// Labels for the subkeys derived from the master key, and the AAD prefix that
// binds an encrypted seed to its user. Changing any of them makes existing
// databases unreadable.
const (
	labelSeedKey     = "otpgate seed-encryption v1"
	labelKeyCheck    = "otpgate key-check v1"
	labelRecoveryKey = "otpgate recovery-code v1"
	seedAADPrefix    = "otpgate/seed/v1\x00"
	// pendingSeedAADPrefix binds a pending (not yet verified) seed to its
	// user and to the pending slot: sealed under it, a seed fails to open
	// as an active one, and the other way round.
	pendingSeedAADPrefix = "otpgate/pending-seed/v1\x00"
)

// keyring holds the subkeys derived from the master key. The master key itself
// is not kept.
type keyring struct {
	seed     cipher.AEAD // AES-256-GCM for TOTP seeds
	check    []byte      // stored in meta/key_check; proves the key matches
	recovery []byte      // HMAC key for recovery-code hashes
}

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func newKeyring(master []byte) (*keyring, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("store: master key has %d bytes, want %d", len(master), KeySize)
	}
	block, err := aes.NewCipher(derive(master, labelSeedKey))
	if err != nil {
		return nil, fmt.Errorf("store: seed cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: seed cipher: %w", err)
	}
	return &keyring{
		seed:     aead,
		check:    derive(master, labelKeyCheck),
		recovery: derive(master, labelRecoveryKey),
	}, nil
}

func seedAAD(name string) []byte        { return []byte(seedAADPrefix + name) }
func pendingSeedAAD(name string) []byte { return []byte(pendingSeedAADPrefix + name) }

// sealSeed encrypts the active seed of user name: nonce (12 random bytes) ||
// ciphertext || tag.
func (k *keyring) sealSeed(name string, seed []byte) ([]byte, error) {
	return k.seal(seedAAD(name), seed)
}

// sealPendingSeed is sealSeed for the pending (not yet verified) seed.
func (k *keyring) sealPendingSeed(name string, seed []byte) ([]byte, error) {
	return k.seal(pendingSeedAAD(name), seed)
}

func (k *keyring) seal(aad, seed []byte) ([]byte, error) {
	ns := k.seed.NonceSize()
	out := make([]byte, ns, ns+len(seed)+k.seed.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("store: seed nonce: %w", err)
	}
	return k.seed.Seal(out, out, seed, aad), nil
}

// errSeedAuth is returned when a sealed seed fails authentication: wrong key,
// a seed moved to another user's record, or corruption.
var errSeedAuth = errors.New("encrypted seed failed authentication (wrong key, or the record was tampered with)")

func (k *keyring) openSeed(name string, sealed []byte) ([]byte, error) {
	return k.open(seedAAD(name), sealed)
}

// openPendingSeed opens what sealPendingSeed sealed.
func (k *keyring) openPendingSeed(name string, sealed []byte) ([]byte, error) {
	return k.open(pendingSeedAAD(name), sealed)
}

func (k *keyring) open(aad, sealed []byte) ([]byte, error) {
	ns := k.seed.NonceSize()
	if len(sealed) < ns+k.seed.Overhead() {
		return nil, fmt.Errorf("encrypted seed is %d bytes, too short", len(sealed))
	}
	seed, err := k.seed.Open(nil, sealed[:ns], sealed[ns:], aad)
	if err != nil {
		return nil, errSeedAuth
	}
	return seed, nil
}

func (k *keyring) matches(check []byte) bool { return hmac.Equal(k.check, check) }

// hashRecoveryCode is HMAC-SHA256(recovery subkey, name || 0x00 || code), hex.
func (k *keyring) hashRecoveryCode(name, code string) string {
	m := hmac.New(sha256.New, k.recovery)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// readKeyFile reads and checks the master key. A missing file returns an
// error for which errors.Is(err, os.ErrNotExist) holds.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err) // errors.Is(err, os.ErrNotExist) still holds
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("store: key file %s has mode %04o: group or others may read it; fix with: chmod 600 %s", path, perm, path)
	}
	key, err := io.ReadAll(io.LimitReader(f, KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: key file %s is %d bytes, want exactly %d: it is not an otpgate seed key (restore the right file from backup)", path, fi.Size(), KeySize)
	}
	return key, nil
}

// createKeyFile writes a new random master key to path with mode 0600. The
// key is written to a new temporary file, synced, and linked into place
// (safefile.CommitNew): it never replaces an existing file or symlink, and
// a crash never leaves a half-written key under the key's name.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("store: new key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	f, err := safefile.Create(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Abort()
	if _, err := f.Write(key); err != nil {
		return nil, fmt.Errorf("store: write key file %s: %w", path, err)
	}
	if err := f.CommitNew(); err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	return key, nil
}
