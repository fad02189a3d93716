package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/otpgate/otpgate/admin"
	"github.com/otpgate/otpgate/enroll"
)

// defaultIssuer names the service in authenticator apps when radiusd.toml
// sets no issuer.
const defaultIssuer = "otpgate"

func mfaCommands() []*command {
	var (
		pngPath  string
		code     string
		force    bool
		enrJSON  bool
		recJSON  bool
		resetYes bool
	)
	return []*command{
		{
			name:    "enroll",
			args:    "NAME [--png FILE] [--code CODE] [--force] [--json]",
			summary: "Give a user a TOTP token: QR code, verify one code, recovery codes.",
			help: `Shows a QR code (and the secret in groups of four for manual entry) to
scan with an authenticator app, then asks for the 6-digit code the app
shows. The token is stored only once a code verifies; the command then
prints 10 recovery codes, once.

A user who already has a token is refused unless --force is given; even
with --force the old token keeps working until the new one is verified.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&pngPath, "png", "", "also write the QR code as a PNG image to `FILE`")
				fs.StringVar(&code, "code", "", "verify with `CODE` instead of asking for it")
				fs.BoolVar(&force, "force", false, "replace an active token (the old one works until the new one is verified)")
				fs.BoolVar(&enrJSON, "json", false, "print one JSON object (user, otpauth URI, secret, recovery codes) after activation; needs --code")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				if err := checkName(name); err != nil {
					return err
				}
				svc, err := a.service()
				if err != nil {
					return err
				}
				// Refuse before a QR code is shown: an unknown user, or an
				// active token without --force.
				u, err := svc.ShowUser(a.ctx, name)
				if err != nil {
					return explain(err, name)
				}
				if u.Enrolled && !force {
					return explain(admin.ErrAlreadyEnrolled, name)
				}
				if u.Disabled {
					fmt.Fprintf(a.stderr, "note: user %q is disabled; enable it with: otpgate user enable %s\n", name, name)
				}
				issuer := a.cfg.Issuer
				if issuer == "" {
					issuer = defaultIssuer
				}
				flow := enroll.Flow{
					In:      &ctxReader{ctx: a.ctx, r: a.stdin},
					Out:     a.stdout,
					Issuer:  issuer,
					User:    name,
					PNGPath: pngPath,
					Code:    code,
					JSON:    enrJSON,
					Now:     time.Now,
					Activate: func(ctx context.Context, secret []byte) ([]string, error) {
						return svc.ActivateTOTP(ctx, name, secret, force)
					},
				}
				if err := flow.Run(a.ctx); err != nil {
					if a.ctx.Err() != nil && errors.Is(err, context.Canceled) {
						fmt.Fprintln(a.stdout) // end the prompt line
						return fmt.Errorf("interrupted; the new token was not activated")
					}
					return explain(err, name)
				}
				return nil
			},
		},
		{
			name:    "reset",
			args:    "NAME",
			summary: "Remove a user's TOTP token and recovery codes.",
			help: `The user can then log in only as policy allows for users without a
token ([auth] mfa, grace_until). Give a new token with: otpgate enroll NAME`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&resetYes, "yes", false, "accepted for scripts; reset never asks")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				svc, err := a.service()
				if err != nil {
					return err
				}
				if err := svc.ResetMFA(a.ctx, name); err != nil {
					return explain(err, name)
				}
				fmt.Fprintf(a.stdout, "removed the token and recovery codes of %q\nnext: enroll a new token with: otpgate enroll %s\n", name, name)
				return nil
			},
		},
		{
			name:    "recovery-codes",
			args:    "NAME [--json]",
			summary: "Issue 10 new recovery codes; the old ones stop working.",
			help: `Each recovery code replaces a TOTP code once, for a user who lost the
phone. The codes are printed once and stored only hashed: hand them to the
user now.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&recJSON, "json", false, "print a JSON array of codes")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				svc, err := a.service()
				if err != nil {
					return err
				}
				codes, err := svc.NewRecoveryCodes(a.ctx, name)
				if err != nil {
					return explain(err, name)
				}
				if recJSON {
					return writeJSON(a.stdout, codes)
				}
				writeRecoveryCodes(a.stdout, name, codes)
				return nil
			},
		},
	}
}

// ctxReader makes a blocking read (a terminal waiting for a code) return
// when the context ends, so Ctrl-C stops the enrollment at once. The
// abandoned read finishes in the background; its data is dropped.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, len(p))
	done := make(chan result, 1)
	go func() {
		n, err := c.r.Read(buf)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return copy(p, buf[:r.n]), r.err
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
}

func writeRecoveryCodes(w io.Writer, name string, codes []string) {
	fmt.Fprintf(w, "Recovery codes for %s (each works once; any older codes no longer work).\n"+
		"They are shown only now: hand them to the user.\n\n", name)
	for _, c := range codes {
		fmt.Fprintf(w, "  %s\n", c)
	}
}
