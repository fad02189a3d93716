package pamhelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
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
	ErrAuthtokTimeout = errors.New("pamhelper: no end of the authtok on stdin in time (otpgate-pam reads it from pam_exec expose_authtok; " +
		"by hand: printf '%s' \"$PASSWORD$CODE\" | PAM_TYPE=auth PAM_USER=name otpgate-pam)")
)

// DefaultStdinTimeout bounds the wait for the authtok. pam_exec writes it
// and closes the pipe right after starting the helper, so it arrives at
// once; the bound only matters when stdin is a terminal (the helper run by
// hand) or a pipe nobody closes, where reading to EOF would wait forever.
const DefaultStdinTimeout = 10 * time.Second

// ReadAuthtokWithin is ReadAuthtok bounded by timeout and ctx. On timeout
// it returns ErrAuthtokTimeout and leaves the read blocked in the
// background: the process is about to exit anyway.
func ReadAuthtokWithin(ctx context.Context, r io.Reader, timeout time.Duration) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := ReadAuthtok(r)
		done <- result{b, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-done:
		return res.b, res.err
	case <-t.C:
		return nil, ErrAuthtokTimeout
	case <-ctx.Done():
		return nil, fmt.Errorf("pamhelper: read authtok from stdin: %w", ctx.Err())
	}
}

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
