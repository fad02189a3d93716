package enroll

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/otpgate/otpgate/internal/safefile"
	"github.com/otpgate/otpgate/totp"
)

// Errors Flow.Run returns; the CLI may map them to messages or exit codes.
var (
	// ErrWrongCode: the code (or every one of the tries) was not right. The
	// server side returns it too (admin.ErrWrongCode is this value), so
	// Activate may return it for a code that does not check.
	ErrWrongCode = errors.New("wrong code")
	// ErrAborted: input ended before a correct code was entered.
	ErrAborted = errors.New("aborted")
)

// Tries is how many codes the interactive flow asks for before giving up.
const Tries = 3

// Skew is how many time steps either side of now an enrollment code may be
// from (RFC 6238 §5.2 recommends at most one).
const Skew = 1

// Flow is one enrollment, in two steps. The server has already made the
// secret and stored it as the user's pending token (admin BeginEnroll);
// the flow shows it as a QR code and text, and sends a code from the
// user's app to Activate, which checks it against the pending token and,
// if it is right, activates the token and returns the recovery codes,
// shown once.
//
// Run does both on a terminal (prompting for the code); Start shows the
// secret and leaves the enrollment pending, and Finish completes a pending
// enrollment with a code given on the command line, for scripts.
type Flow struct {
	In      io.Reader // where typed codes come from (one per line)
	Out     io.Writer // where the QR code, prompts and results go
	Issuer  string    // shown in the app, e.g. "otpgate" or "ACME VPN"
	User    string    // the account name (otpgate user name)
	PNGPath string    // if set, also write the QR code there as a PNG (mode 0600)
	JSON    bool      // Start and Finish print one JSON object instead of text

	// Secret is the pending token's secret (at least MinSecretSize bytes),
	// from admin BeginEnroll. Run and Start need it; Finish does not.
	Secret []byte
	// Params are the pending token's parameters, shown in the URI and the
	// text and used for the length of a code; the zero value is
	// totp.Default, the token admin BeginEnroll makes.
	Params totp.Params

	// PendingOnEOF: when In ends before any code was typed (a script
	// without a terminal), Run leaves the enrollment pending, says how to
	// finish it (FinishHint) and returns nil instead of ErrAborted.
	PendingOnEOF bool
	// FinishHint is the command that finishes a pending enrollment, e.g.
	// "otpgate enroll alice --code CODE", shown by Start and by Run when
	// it leaves the enrollment pending.
	FinishHint string

	// Activate sends a code (Params.Digits digits, spaces removed) to the
	// server, which checks it against the pending token. It returns the new
	// recovery codes (plaintext, shown once), or an error wrapping
	// ErrWrongCode for a code that is not right (the flow then asks again);
	// any other error ends the flow.
	Activate func(ctx context.Context, code string) ([]string, error)
}

// PendingResult is what Start prints in JSON mode. It contains the secret:
// the caller's output is as sensitive as the QR code.
type PendingResult struct {
	User    string `json:"user"`
	URI     string `json:"uri"`
	Secret  string `json:"secret"` // base32, no padding
	Pending bool   `json:"pending"`
}

// Result is what Finish prints in JSON mode.
type Result struct {
	User          string   `json:"user"`
	RecoveryCodes []string `json:"recovery_codes"`
}

// Run shows the pending secret, asks for a code up to Tries times and sends
// each to Activate; on success it shows the recovery codes. The secret is
// never logged; it appears only on Out (and in PNGPath), which is where the
// user must see it.
func (f Flow) Run(ctx context.Context) error {
	if err := f.check(); err != nil {
		return err
	}
	if f.In == nil {
		return errors.New("enroll: flow: no input to read a code from")
	}
	out := &errWriter{w: f.Out}
	if _, err := f.show(ctx, out, false); err != nil {
		return err
	}
	codes, err := f.askCode(ctx, out)
	if err != nil || codes == nil {
		return err
	}
	return f.printCodes(out, codes)
}

// Start shows the pending secret (QR code, key, URI; or one JSON
// PendingResult) and how to finish the enrollment, without asking for a
// code.
func (f Flow) Start(ctx context.Context) error {
	if err := f.check(); err != nil {
		return err
	}
	out := &errWriter{w: f.Out}
	uri, err := f.show(ctx, out, f.JSON)
	if err != nil {
		return err
	}
	if f.JSON {
		return writeJSON(out, PendingResult{User: f.User, URI: uri, Secret: EncodeSecret(f.Secret), Pending: true})
	}
	f.printPending(out)
	if out.err != nil {
		return fmt.Errorf("enroll: write: %w", out.err)
	}
	return nil
}

// Finish sends code (as typed; spaces are removed) to Activate once and
// shows the recovery codes, or one JSON Result.
func (f Flow) Finish(ctx context.Context, code string) error {
	if f.Activate == nil || f.Out == nil {
		return errors.New("enroll: flow: Activate and Out must be set")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	codes, err := f.Activate(ctx, cleanCode(code))
	if err != nil {
		return fmt.Errorf("enroll: activate %q: %w", f.User, err)
	}
	out := &errWriter{w: f.Out}
	if f.JSON {
		if codes == nil {
			codes = []string{}
		}
		return writeJSON(out, Result{User: f.User, RecoveryCodes: codes})
	}
	return f.printCodes(out, codes)
}

func (f Flow) check() error {
	if f.Activate == nil || f.Out == nil {
		return errors.New("enroll: flow: Activate and Out must be set")
	}
	if len(f.Secret) == 0 {
		return errors.New("enroll: flow: no secret (begin the enrollment first)")
	}
	if len(f.Secret) < MinSecretSize {
		return fmt.Errorf("enroll: given secret: %w", ErrSecretTooShort)
	}
	return nil
}

// show prints the QR code, key and URI (unless quiet) and writes the PNG.
func (f Flow) show(ctx context.Context, out *errWriter, quiet bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("enroll: %w", err)
	}
	uri, err := URI(f.Issuer, f.User, f.Secret, f.Params)
	if err != nil {
		return "", err
	}
	if !quiet {
		out.printf("Scan this QR code with Google Authenticator, Microsoft Authenticator, Authy or any TOTP app:\n\n")
		if err := WriteTerminalQR(out, uri); err != nil {
			return "", err
		}
		out.printf("\nCan't scan it? Add the account by hand in the app (%s):\n", describe(f.Params))
		out.printf("  Account: %s:%s\n", f.Issuer, f.User)
		out.printf("  Key:     %s\n", FormatSecret(f.Secret))
		out.printf("  URI:     %s\n", uri)
	}
	if f.PNGPath != "" {
		if err := writePNGFile(f.PNGPath, uri); err != nil {
			return "", err
		}
		if !quiet {
			out.printf("The QR code is also in %s (it holds the secret: delete it once scanned).\n", f.PNGPath)
		}
	}
	if out.err != nil {
		return "", fmt.Errorf("enroll: write: %w", out.err)
	}
	return uri, nil
}

func (f Flow) printPending(out *errWriter) {
	out.printf("\nThe enrollment of %s is pending: the token is not active until a code from the app is checked.\n", f.User)
	if f.FinishHint != "" {
		out.printf("Finish it with the code the app shows:\n  %s\n", f.FinishHint)
	}
}

func (f Flow) printCodes(out *errWriter, codes []string) error {
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

func writeJSON(out *errWriter, v any) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("enroll: write json: %w", err)
	}
	return nil
}

// askCode asks for codes and sends each to Activate until one is right
// (Tries times). It returns the recovery codes, or nil codes and a nil
// error when PendingOnEOF applies.
func (f Flow) askCode(ctx context.Context, out *errWriter) ([]string, error) {
	in := bufio.NewReader(f.In)
	for try := 1; try <= Tries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("enroll: %w", err)
		}
		out.printf("\nEnter the %d-digit code from your app: ", f.Params.Digits())
		if out.err != nil {
			return nil, fmt.Errorf("enroll: write: %w", out.err)
		}
		line, err := in.ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			if errors.Is(err, io.EOF) {
				out.printf("\n")
				if try == 1 && f.PendingOnEOF {
					f.printPending(out)
					if out.err != nil {
						return nil, fmt.Errorf("enroll: write: %w", out.err)
					}
					return nil, nil
				}
				return nil, fmt.Errorf("enroll: %w: input ended before a code was entered; the token was not activated", ErrAborted)
			}
			return nil, fmt.Errorf("enroll: read code: %w", err)
		}
		code := cleanCode(line)
		left := Tries - try
		if !totp.IsDigits(code, f.Params.Digits()) {
			if left == 0 {
				break
			}
			out.printf("A code is the %d digits your app shows; try again (%s left)\n", f.Params.Digits(), triesLeft(left))
			continue
		}
		codes, err := f.Activate(ctx, code)
		switch {
		case err == nil:
			return codes, nil
		case !errors.Is(err, ErrWrongCode):
			return nil, fmt.Errorf("enroll: activate %q: %w", f.User, err)
		case left > 0:
			out.printf("That code is not right; check the phone's clock and try again (%s left)\n", triesLeft(left))
		}
	}
	return nil, fmt.Errorf("enroll: %w %d times: the token was not activated (is the phone's clock right?)", ErrWrongCode, Tries)
}

// describe is how a person adds a token with parameters p by hand:
// "time-based, 6 digits, every 30 seconds", and the algorithm when it is
// not SHA1 (apps assume SHA1).
func describe(p totp.Params) string {
	s := fmt.Sprintf("time-based, %d digits, every %d seconds", p.Digits(), p.Period())
	if p.Algorithm() != totp.Default.Algorithm() {
		s += ", algorithm " + p.Algorithm()
	}
	return s
}

func triesLeft(n int) string {
	if n == 1 {
		return "1 try"
	}
	return fmt.Sprintf("%d tries", n)
}

// cleanCode drops the spaces apps show in the middle of a code ("123 456")
// and the line ending; the server then insists on exactly the token's
// digits.
func cleanCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// writePNGFile writes the QR code PNG to path with mode 0600 even when path
// already exists with a wider mode: a new file in the same directory is
// renamed over it, and a symlink planted at path is replaced, never
// followed (safefile).
func writePNGFile(path, uri string) error {
	var buf bytes.Buffer
	if err := WritePNG(&buf, uri, 0); err != nil {
		return err
	}
	if err := safefile.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("enroll: write png: %w", err)
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
