package pamhelper

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxAuthtok is the most stdin may hold: pam_exec passes at most
// PAM_MAX_RESP_SIZE-1 = 511 bytes, plus one NUL some versions append.
const MaxAuthtok = 512

// MaxUserPassword is what one RADIUS User-Password can carry (RFC 2865 §5.2).
const MaxUserPassword = 128

// Errors from ReadAuthtok. None of them carries any byte of the secret.
var (
	ErrAuthtokEmpty   = errors.New("pamhelper: empty authtok on stdin (is expose_authtok on the pam_exec line?)")
	ErrAuthtokTooLong = fmt.Errorf("pamhelper: authtok on stdin is longer than %d bytes", MaxAuthtok)
	ErrAuthtokNUL     = errors.New("pamhelper: authtok contains a NUL byte before its end")
)

// ReadAuthtok reads what pam_exec expose_authtok writes: the authtok with no
// newline (Debian 12 writes strlen bytes, then closes the pipe), so it reads
// to EOF, at most MaxAuthtok+1 bytes. One trailing NUL is dropped; nothing
// else is trimmed, since spaces and newlines may be part of a password.
func ReadAuthtok(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxAuthtok+1))
	if err != nil {
		clear(b)
		return nil, fmt.Errorf("pamhelper: read authtok from stdin: %w", err)
	}
	if len(b) > MaxAuthtok {
		clear(b)
		return nil, ErrAuthtokTooLong
	}
	if n := len(b); n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	if len(b) == 0 {
		return nil, ErrAuthtokEmpty
	}
	if bytes.IndexByte(b, 0) >= 0 {
		clear(b)
		return nil, ErrAuthtokNUL
	}
	return b, nil
}
