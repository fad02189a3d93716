package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
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
		links    linkFlags
	)
	return []*command{
		{
			name:    "enroll",
			args:    "[NAME] [--png FILE] [--code CODE] [--force] [--json] [--link [--expires 72h] [--all-pending]]",
			summary: "Give a user a TOTP token: QR code, verify one code, recovery codes.",
			help: `Enrollment has two steps. The first makes a new secret, stores it as the
user's pending token and shows it as a QR code (and the secret in groups
of four for manual entry) to scan with an authenticator app. The second
checks one 6-digit code from the app against the pending token; only then
is the token active, and the command prints 10 recovery codes, once. The
code used to enroll can't be used again to log in.

On a terminal, otpgate enroll NAME does both: it asks for the code (three
tries). Without a terminal (standard input ends at once), or with --json,
it does only the first step and exits 0; finish with
  otpgate enroll NAME --code CODE
which activates the pending token with a code from the app (no new secret).
A pending token allows 5 wrong codes, then it is discarded; running
otpgate enroll NAME again starts over with a new secret.

A user who already has a token is refused unless --force is given (on
both steps); even with --force the old token keeps working until the new
one is verified.

Without NAME, an ordinary user enrolls themselves: the otpgate user named
like their login, over the self-enrollment socket (control.enroll_socket),
if otpgate knows them and they have no token yet.

With --link, it prints a one-time link to the enrollment web page ([web]
in radiusd.toml) instead: the user opens it in any browser, scans the QR
code and types a code. The link works once, until --expires (default
72h); five wrong codes kill it; a new link replaces the old one.
--all-pending (no NAME) issues one for every user who must use MFA
([auth] mfa, mfa_groups), has no token and is not disabled.`,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&pngPath, "png", "", "also write the QR code as a PNG image to `FILE` (first step)")
				fs.StringVar(&code, "code", "", "finish a pending enrollment with `CODE` from the app")
				fs.BoolVar(&force, "force", false, "replace an active token (the old one works until the new one is verified)")
				fs.BoolVar(&enrJSON, "json", false, `print one JSON object: without --code {"user","uri","secret","pending":true}, with --code {"user","recovery_codes"}, with --link {"user","url","expires"} (an array with --all-pending)`)
				links.register(fs)
			},
			minArgs: 0, maxArgs: 1,
			run: func(a *app, fs *flag.FlagSet, args []string) error {
				if links.link || links.allPending {
					return runLinks(a, fs, args, links, enrJSON)
				}
				if len(args) == 0 {
					return runSelfEnroll(a, fs, pngPath)
				}
				name := args[0]
				if err := checkName(name); err != nil {
					return err
				}
				if code != "" && pngPath != "" {
					return usagef("enroll: --png belongs to the first step (without --code): the QR code was shown when the enrollment began")
				}
				svc, err := a.service()
				if err != nil {
					return err
				}
				issuer := a.cfg.Issuer
				if issuer == "" {
					issuer = defaultIssuer
				}
				finish := "otpgate enroll " + name + " --code CODE"
				if force {
					finish += " --force"
				}
				flow := enroll.Flow{
					In:         &ctxReader{ctx: a.ctx, r: a.stdin},
					Out:        a.stdout,
					Issuer:     issuer,
					User:       name,
					PNGPath:    pngPath,
					JSON:       enrJSON,
					FinishHint: finish,
					Activate: func(ctx context.Context, code string) ([]string, error) {
						return svc.ActivateTOTP(ctx, name, code, force)
					},
				}
				if code != "" {
					// Second step: activate the pending token; no new secret.
					return explainEnroll(flow.Finish(a.ctx, code), name, force, true)
				}
				// Refuse before a QR code is shown: an unknown user, or an
				// active token without --force (BeginEnroll checks again).
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
				if flow.Secret, err = svc.BeginEnroll(a.ctx, name, force); err != nil {
					return explain(err, name)
				}
				if enrJSON {
					return explainEnroll(flow.Start(a.ctx), name, force, false)
				}
				// Without a terminal, input that ends before any code leaves
				// the enrollment pending (exit 0); a script or a person on
				// a pipe may still answer the prompt.
				flow.PendingOnEOF = !isTerminal(a.stdin)
				if err := flow.Run(a.ctx); err != nil {
					if a.ctx.Err() != nil && errors.Is(err, context.Canceled) {
						fmt.Fprintln(a.stdout) // end the prompt line
						return fmt.Errorf("interrupted; the new token was not activated")
					}
					return explainEnroll(err, name, force, false)
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

// explainEnroll is explain for the enrollment errors. withCode: the error
// came from the second step (--code).
func explainEnroll(err error, name string, force, withCode bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrNoPendingEnroll):
		return fmt.Errorf("no enrollment in progress for %s; start one with: otpgate enroll %s", name, name)
	case errors.Is(err, admin.ErrEnrollDiscarded):
		again := "otpgate enroll " + name
		if force {
			again += " --force" // the old token is still there
		}
		return fmt.Errorf("too many wrong codes: the enrollment of %s was discarded and no token was activated; start again with: %s", name, again)
	case errors.Is(err, enroll.ErrAborted):
		hint := "otpgate enroll " + name + " --code CODE"
		if force {
			hint += " --force"
		}
		return fmt.Errorf("%w\nthe enrollment stays pending: finish it with: %s (or start over with: otpgate enroll %s)", err, hint, name)
	case withCode && errors.Is(err, admin.ErrAlreadyEnrolled):
		return fmt.Errorf("user %q already has an active token; to replace it with the pending one run: otpgate enroll %s --code CODE --force (the old token keeps working until then)", name, name)
	case withCode && errors.Is(err, admin.ErrWrongCode):
		again := "otpgate enroll " + name + " --code CODE"
		if force {
			again += " --force"
		}
		return &advice{err: err, msg: fmt.Sprintf("enroll %s: %s\nthe token was not activated; check the phone's clock and run again with a new code: %s", name, wrongCodeDetail(err), again)}
	}
	return explain(err, name)
}

// wrongCodeDetail is err's text from "wrong code" on ("wrong code (4 more
// tries before the enrollment is discarded)"): each layer the error passed
// through (enroll, admin, the control socket) named the user again.
func wrongCodeDetail(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, enroll.ErrWrongCode.Error()); i >= 0 {
		return msg[i:]
	}
	return msg
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func writeRecoveryCodes(w io.Writer, name string, codes []string) {
	fmt.Fprintf(w, "Recovery codes for %s (each works once; any older codes no longer work).\n"+
		"They are shown only now: hand them to the user.\n\n", name)
	for _, c := range codes {
		fmt.Fprintf(w, "  %s\n", c)
	}
}
