package enroll

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Errors Flow.Run returns; the CLI may map them to messages or exit codes.
var (
	// ErrWrongCode: the code (or every one of the tries) was not right.
	ErrWrongCode = errors.New("wrong code")
	// ErrAborted: input ended before a correct code was entered.
	ErrAborted = errors.New("aborted")
	// ErrCodeRequired: JSON mode has no prompt, so the code must be given.
	ErrCodeRequired = errors.New("a code is required")
)

// Tries is how many codes the interactive flow asks for before giving up.
const Tries = 3

// Skew is how many time steps either side of now an enrollment code may be
// from (RFC 6238 §5.2 recommends at most one).
const Skew = 1

// Flow is one enrollment: make a secret, show it as a QR code and text, check
// one code from the user's app, and only then activate the token and show the
// recovery codes once.
type Flow struct {
	In      io.Reader // where typed codes come from (one per line)
	Out     io.Writer // where the QR code, prompts and results go
	Issuer  string    // shown in the app, e.g. "otpgate" or "ACME VPN"
	User    string    // the account name (otpgate user name)
	PNGPath string    // if set, also write the QR code there as a PNG (mode 0600)
	Code    string    // --code: check this code (one try) instead of prompting
	JSON    bool      // print one JSON object after activation instead of text; needs Code

	// Secret, if set, is used instead of a new random secret (at least
	// MinSecretSize bytes). It lets a script that already holds the secret
	// pass --code, and tests use it.
	Secret []byte

	Now func() time.Time // defaults to time.Now
	// Activate stores the verified secret as the user's token and returns
	// the new recovery codes (plaintext, shown once). It is called only
	// after a correct code.
	Activate func(ctx context.Context, secret []byte) ([]string, error)
}

// Result is what JSON mode prints after activation. It contains the secret:
// the caller's output is as sensitive as the QR code.
type Result struct {
	User          string   `json:"user"`
	URI           string   `json:"uri"`
	Secret        string   `json:"secret"` // base32, no padding
	RecoveryCodes []string `json:"recovery_codes"`
}

// Run performs the enrollment. Nothing is stored unless a correct code is
// entered and Activate succeeds. The secret is never logged; it appears only
// on Out (and in PNGPath), which is where the user must see it.
func (f Flow) Run(ctx context.Context) error {
	if f.Activate == nil || f.Out == nil {
		return errors.New("enroll: flow: Activate and Out must be set")
	}
	if f.JSON && f.Code == "" {
		return fmt.Errorf("enroll: %w with JSON output (pass the code from the app, e.g. --code)", ErrCodeRequired)
	}
	if f.Code == "" && f.In == nil {
		return errors.New("enroll: flow: no input to read a code from")
	}
	now := f.Now
	if now == nil {
		now = time.Now
	}

	secret := f.Secret
	if secret == nil {
		var err error
		if secret, err = NewSecret(); err != nil {
			return err
		}
	} else if len(secret) < MinSecretSize {
		return fmt.Errorf("enroll: given secret: %w", ErrSecretTooShort)
	}
	uri, err := URI(f.Issuer, f.User, secret)
	if err != nil {
		return err
	}

	out := &errWriter{w: f.Out}
	if !f.JSON {
		out.printf("Scan this QR code with Google Authenticator, Microsoft Authenticator, Authy or any TOTP app:\n\n")
		if err := WriteTerminalQR(out, uri); err != nil {
			return err
		}
		out.printf("\nCan't scan it? Add the account by hand in the app (time-based, 6 digits, every 30 seconds):\n")
		out.printf("  Account: %s:%s\n", f.Issuer, f.User)
		out.printf("  Key:     %s\n", FormatSecret(secret))
		out.printf("  URI:     %s\n", uri)
	}
	if f.PNGPath != "" {
		if err := writePNGFile(f.PNGPath, uri); err != nil {
			return err
		}
		if !f.JSON {
			out.printf("The QR code is also in %s (it holds the secret: delete it once scanned).\n", f.PNGPath)
		}
	}
	if out.err != nil {
		return fmt.Errorf("enroll: write: %w", out.err)
	}

	if err := f.checkCode(ctx, out, secret, now); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	codes, err := f.Activate(ctx, secret)
	if err != nil {
		return fmt.Errorf("enroll: activate %q: %w", f.User, err)
	}

	if f.JSON {
		if codes == nil {
			codes = []string{}
		}
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(Result{User: f.User, URI: uri, Secret: EncodeSecret(secret), RecoveryCodes: codes}); err != nil {
			return fmt.Errorf("enroll: write json: %w", err)
		}
		return nil
	}
	out.printf("\nCode accepted: two-factor login is now active for %s.\n", f.User)
	if len(codes) > 0 {
		out.printf("\nRecovery codes (store these somewhere safe; each works once, and they will not be shown again):\n\n")
		for _, c := range codes {
			out.printf("  %s\n", c)
		}
		out.printf("\n")
	}
	if out.err != nil {
		return fmt.Errorf("enroll: write: %w", out.err)
	}
	return nil
}

// checkCode asks for codes until one is right (Tries times), or checks the
// given Code once.
func (f Flow) checkCode(ctx context.Context, out *errWriter, secret []byte, now func() time.Time) error {
	if f.Code != "" {
		if _, ok := Verify(secret, cleanCode(f.Code), now(), Skew); !ok {
			return fmt.Errorf("enroll: %w: the token was not activated (is the phone's clock right?)", ErrWrongCode)
		}
		return nil
	}
	in := bufio.NewReader(f.In)
	for try := 1; try <= Tries; try++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("enroll: %w", err)
		}
		out.printf("\nEnter the 6-digit code from your app: ")
		if out.err != nil {
			return fmt.Errorf("enroll: write: %w", out.err)
		}
		line, err := in.ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			if errors.Is(err, io.EOF) {
				out.printf("\n")
				return fmt.Errorf("enroll: %w: input ended before a code was entered; the token was not activated", ErrAborted)
			}
			return fmt.Errorf("enroll: read code: %w", err)
		}
		code := cleanCode(line)
		if _, ok := Verify(secret, code, now(), Skew); ok {
			return nil
		}
		left := Tries - try
		if left == 0 {
			break
		}
		if !isDigits(code, Digits) {
			out.printf("A code is the %d digits your app shows; try again (%s left)\n", Digits, triesLeft(left))
		} else {
			out.printf("That code is not right; check the phone's clock and try again (%s left)\n", triesLeft(left))
		}
	}
	return fmt.Errorf("enroll: %w %d times: the token was not activated (is the phone's clock right?)", ErrWrongCode, Tries)
}

func triesLeft(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// cleanCode drops the spaces apps show in the middle of a code ("123 456")
// and the line ending; Verify then insists on exactly 6 digits.
func cleanCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// writePNGFile writes the QR code PNG to path with mode 0600 even when path
// already exists with a wider mode: a temporary file in the same directory
// (created 0600) is renamed over it.
func writePNGFile(path, uri string) error {
	var buf bytes.Buffer
	if err := WritePNG(&buf, uri, 0); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".otpgate-qr-*.png")
	if err != nil {
		return fmt.Errorf("enroll: write png %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("enroll: write png %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("enroll: write png %s: %w", path, err)
	}
	return nil
}

// errWriter remembers the first write error so the flow can check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
