package loadgen

import (
	"bufio"
	"crypto/rand"
	"encoding/base32"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/otpgate/otpgate/internal/password"
	"golang.org/x/crypto/bcrypt"
)

// User is one row of a users CSV as the generator needs it.
type User struct {
	Name     string
	Password string // plaintext to send; "" when the row holds none or a hash
	Hashed   bool   // the CSV holds a hash, so Password came from elsewhere
	Key      []byte // raw TOTP key
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ReadUsers reads the CSV format of `otpgate import`:
// name,password,totp_secret,groups, with an optional header row. Users
// without a totp_secret are skipped (the generator cannot log them in).
// A password column holding a hash (argon2id, bcrypt) gives a user with
// Hashed set and no Password: pass the plaintext with SetPassword.
func ReadUsers(r io.Reader) ([]User, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 1<<20))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var users []User
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("loadgen: users csv: %w", err)
		}
		if row == 0 && len(rec) > 0 && strings.TrimPrefix(rec[0], "\ufeff") == "name" {
			continue
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("loadgen: users csv: row %d: %d columns, want name,password,totp_secret,groups", row+1, len(rec))
		}
		sec := strings.ToUpper(strings.NewReplacer(" ", "", "=", "").Replace(rec[2]))
		if sec == "" {
			continue
		}
		key, err := b32.DecodeString(sec)
		if err != nil {
			return nil, fmt.Errorf("loadgen: users csv: row %d (user %q): totp_secret is not base32", row+1, rec[0])
		}
		u := User{Name: rec[0], Key: key}
		if password.IsHash(rec[1]) {
			u.Hashed = true
		} else {
			u.Password = rec[1]
		}
		users = append(users, u)
	}
	if len(users) == 0 {
		return nil, errors.New("loadgen: users csv: no user with a totp_secret")
	}
	return users, nil
}

// SetPassword sets the plaintext of every user whose CSV row holds a hash.
func SetPassword(users []User, pw string) {
	for i := range users {
		if users[i].Hashed {
			users[i].Password = pw
		}
	}
}

// GenerateUsers writes n test users (bench000001, ...) as an import CSV with
// random 160-bit TOTP secrets. Without passwords the password column is
// empty (otp-only). With passwords and hash "" or "plain", each user gets
// its own random plaintext password. With hash "bcrypt", "bcrypt:COST" or
// "argon2id" (password.DefaultParams), one random password is hashed once
// and that hash is written for every user (hashing n passwords would take
// hours; the verify cost per request is the same). It returns that shared
// plaintext, or "" when there is none.
func GenerateUsers(w io.Writer, n int, withPasswords bool, hash string) (string, error) {
	if n <= 0 {
		return "", fmt.Errorf("loadgen: generate users: n = %d, want > 0", n)
	}
	shared, sharedHash := "", ""
	if withPasswords && hash != "" && hash != "plain" {
		shared = randomPassword()
		var err error
		switch {
		case hash == "argon2id":
			sharedHash, err = password.Hash(shared, password.DefaultParams)
		case hash == "bcrypt" || strings.HasPrefix(hash, "bcrypt:"):
			cost := bcrypt.DefaultCost
			if c, ok := strings.CutPrefix(hash, "bcrypt:"); ok {
				if cost, err = strconv.Atoi(c); err != nil {
					return "", fmt.Errorf("loadgen: generate users: bad bcrypt cost %q", c)
				}
			}
			var h []byte
			h, err = bcrypt.GenerateFromPassword([]byte(shared), cost)
			sharedHash = string(h)
		default:
			return "", fmt.Errorf("loadgen: generate users: unknown hash %q (want plain, bcrypt, bcrypt:COST or argon2id)", hash)
		}
		if err != nil {
			return "", fmt.Errorf("loadgen: generate users: hash: %w", err)
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write([]string{"name", "password", "totp_secret", "groups"}); err != nil {
		return "", fmt.Errorf("loadgen: generate users: %w", err)
	}
	key := make([]byte, 20)
	rec := make([]string, 4)
	for i := 1; i <= n; i++ {
		if _, err := rand.Read(key); err != nil {
			return "", fmt.Errorf("loadgen: generate users: %w", err)
		}
		rec[0] = UserName(i)
		switch {
		case !withPasswords:
			rec[1] = ""
		case sharedHash != "":
			rec[1] = sharedHash
		default:
			rec[1] = randomPassword()
		}
		rec[2] = b32.EncodeToString(key)
		rec[3] = ""
		if err := cw.Write(rec); err != nil {
			return "", fmt.Errorf("loadgen: generate users: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return "", fmt.Errorf("loadgen: generate users: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("loadgen: generate users: %w", err)
	}
	return shared, nil
}

// UserName is the name GenerateUsers gives user i (1-based).
func UserName(i int) string { return fmt.Sprintf("bench%07d", i) }

// randomPassword returns 16 random letters and digits, none at the end (so
// an append-mode split never mistakes part of it for a code).
func randomPassword() string {
	const alnum = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 16)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	b[len(b)-1] = 'x'
	return string(b)
}
