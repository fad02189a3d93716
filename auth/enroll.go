package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/store"
)

// First-login enrollment (Options.EnrollAtLogin).
//
// A user who needs MFA and has no token, and who just typed the right
// password on a client that can show a challenge, is offered enrollment
// instead of the not-enrolled Reject:
//
//  1. offer: Enroller.BeginEnroll stores a new pending token and the
//     Challenge shows its key in groups of four (or, with EnrollLink, a
//     one-time link whose page begins the enrollment), and asks for a code
//     (ReasonEnrollOffered). The pending token is never valid for login.
//  2. code: the answer goes to Enroller.ActivateTOTP, the path the
//     terminal and the web page use: a matching code makes the pending
//     token the active one, its step counted as used, and returns new
//     recovery codes; the Challenge shows them (ReasonEnrollConfirmed). A
//     wrong code gets a new Challenge with a new State
//     (ReasonEnrollBadCode), up to maxEnrollAnswers codes per offer, then a
//     Reject.
//  3. recovery codes shown: whatever the answer (the user presses Enter),
//     the login is accepted (ReasonEnrolled).
//
// A user with a token is never offered this, and a code answered after a
// token appeared (enrolled on the link's page meanwhile) is checked as an
// ordinary login code: nothing here replaces a token.

// enrollStep is what a State of the enrollment expects.
type enrollStep int

const (
	stepLoginCode     enrollStep = iota // an ordinary code challenge
	stepEnrollCode                      // the first code from the newly added key
	stepRecoveryShown                   // the recovery codes were shown; any answer
)

// maxEnrollAnswers bounds the codes one offer takes (the pending token
// itself allows a few more, for the link's page).
const maxEnrollAnswers = 3

// maxReplyMessage is what one Reply-Message holds; pam_radius_auth shows
// only the first, so each prompt fits in one.
const maxReplyMessage = 253

// Enroller begins and activates pending tokens. otpgated passes
// admin.Local: first-login enrollment is the admin's enrollment, not a
// second implementation.
type Enroller interface {
	// BeginEnroll stores a new pending token for name and returns its
	// secret (totp.Default parameters). force is always false here: it
	// fails for a user with an active token.
	BeginEnroll(ctx context.Context, name string, force bool) (secret []byte, err error)
	// ActivateTOTP checks code against the pending token and makes it the
	// active one, returning the recovery codes to show. A code that does
	// not match is an error wrapping enroll.ErrWrongCode.
	ActivateTOTP(ctx context.Context, name, code string, force bool) (recovery []string, err error)
}

// enrollOffered says whether a request whose user needs a token and has
// none may enroll now: the option is on, and the client can show a
// challenge (OpenVPN's static challenge, answered already, cannot).
func (a *Authenticator) enrollOffered(r Request, static bool) bool {
	if !a.opt.EnrollAtLogin || static {
		return false
	}
	switch r.Mode {
	case ModeChallenge, ModeAuto, "":
		return true
	}
	return false
}

// offerEnrollment begins the enrollment of u and answers with the
// Challenge that shows the key or the link.
func (a *Authenticator) offerEnrollment(ctx context.Context, u *store.User, client string) Decision {
	if a.opt.EnrollLink != nil {
		url, err := a.opt.EnrollLink(ctx, u.Name)
		switch {
		case err != nil && ctx.Err() != nil:
			return dropCanceled
		case err != nil:
			a.log.Error("auth: enrollment link failed; offering the key", "user", u.Name, "err", err)
		default:
			msg := fit(
				fmt.Sprintf("MFA setup: open %s to add %s to your authenticator app, then enter the 6-digit code it shows: ", url, u.Name),
				fmt.Sprintf("MFA setup: open %s to add your account to your authenticator app, then enter the 6-digit code: ", url),
			)
			if msg != "" {
				return a.enrollChallenge(ctx, u.Name, client, stateInfo{step: stepEnrollCode, link: url}, ReasonEnrollOffered, msg)
			}
			// Never a cut URL: the key always fits.
			a.log.Warn("auth: web.public_url is too long for a Reply-Message; offering the key", "user", u.Name)
		}
	}
	secret, err := a.opt.Enroller.BeginEnroll(ctx, u.Name, false)
	if err != nil {
		return a.enrollFailed(ctx, u.Name, "auth: begin enrollment", err)
	}
	return a.enrollChallenge(ctx, u.Name, client, stateInfo{step: stepEnrollCode}, ReasonEnrollOffered,
		a.keyOffer(u.Name, enroll.FormatSecret(secret), 6))
}

// keyOffer is the Challenge text that shows the key; with the longest name
// and issuer it drops the account, never the key.
func (a *Authenticator) keyOffer(name, key string, digits int) string {
	return fit(
		fmt.Sprintf("MFA setup: add %s (%s) to your authenticator app with the key\n%s\nEnter the %d-digit code: ", name, a.opt.Issuer, key, digits),
		fmt.Sprintf("MFA setup: add %s to your authenticator app with the key\n%s\nEnter the %d-digit code: ", name, key, digits),
		fmt.Sprintf("MFA setup: add this key to your authenticator app\n%s\nEnter the %d-digit code: ", key, digits),
	)
}

// enrollFailed answers a failed enrollment operation: a token that
// appeared since the lookup needs its code (as noToken answers), anything
// else is an internal error.
func (a *Authenticator) enrollFailed(ctx context.Context, name, msg string, err error) Decision {
	if ctx.Err() != nil {
		return dropCanceled
	}
	if u, found, gerr := a.lookup(ctx, name); gerr == nil && found && hasToken(&u) {
		return reject(ReasonBadCode)
	}
	return a.internal(ctx, msg, name, err)
}

func (a *Authenticator) enrollChallenge(ctx context.Context, user, client string, info stateInfo, reason Reason, msg string) Decision {
	st, err := a.states.issue(ctx, user, client, info, a.now())
	if err != nil {
		return a.internal(ctx, "auth: issue state", user, err)
	}
	return Decision{Result: Challenge, Reason: reason, State: st, Message: msg}
}

// enrollAnswer handles the answer to an enrollment Challenge whose State
// (taken already) carried info.
func (a *Authenticator) enrollAnswer(ctx context.Context, r Request, info stateInfo) Decision {
	if info.step == stepRecoveryShown {
		return a.enrollDone(ctx, r.User)
	}
	// Decide on a fresh record: a user disabled, locked or enrolled since
	// the offer is not enrolled now.
	u, found, err := a.lookup(ctx, r.User)
	switch {
	case err != nil:
		return a.internal(ctx, "auth: read user", r.User, err)
	case !found:
		return reject(ReasonUnknownUser)
	}
	if d, ok := barred(&u, a.now()); ok {
		return d
	}
	code := strings.Join(strings.Fields(r.Password), "") // "123 456" as some apps show it
	if hasToken(&u) {
		// Enrolled meanwhile (on the link's page, in another login): the
		// code is an ordinary login code.
		d, _ := a.checkFactor(ctx, r.User, fieldFactor(code))
		return d
	}
	codes, err := a.opt.Enroller.ActivateTOTP(ctx, r.User, code, false)
	if err == nil {
		a.log.Info("auth: token enrolled at login", "user", r.User, "client", r.Client)
		return a.enrollChallenge(ctx, r.User, r.Client, stateInfo{step: stepRecoveryShown}, ReasonEnrollConfirmed, recoveryMessage(codes))
	}
	if ctx.Err() != nil {
		return dropCanceled
	}
	if errors.Is(err, enroll.ErrWrongCode) {
		return a.enrollRetry(ctx, r, info)
	}
	// No pending token to check against (admin.ErrNoPendingEnroll), or this
	// wrong code used up its tries (admin.ErrEnrollDiscarded), or a token
	// appeared: decide on the record as ActivateTOTP left it, not as read
	// before it ran.
	u, found, gerr := a.lookup(ctx, r.User)
	switch {
	case gerr != nil:
		return a.internal(ctx, "auth: read user", r.User, gerr)
	case !found:
		return reject(ReasonUnknownUser)
	case hasToken(&u):
		return reject(ReasonBadCode)
	case u.PendingTOTP == nil && info.link != "":
		// A code before the link was opened, or the page's enrollment was
		// discarded: the link's page begins another.
		return a.enrollRetry(ctx, r, info)
	case u.PendingTOTP == nil:
		// Discarded (wrong codes here or on the link's page, the admin's
		// reset): the next login offers a new key.
		return reject(ReasonEnrollBadCode)
	}
	return a.internal(ctx, "auth: activate token", r.User, err)
}

// enrollRetry answers a wrong enrollment code: a new Challenge with a new
// State while the offer has tries left, else a Reject.
func (a *Authenticator) enrollRetry(ctx context.Context, r Request, info stateInfo) Decision {
	info.tries++
	left := maxEnrollAnswers - info.tries
	if left <= 0 {
		return reject(ReasonEnrollBadCode)
	}
	wrong := fmt.Sprintf("Wrong code (%d %s left). ", left, plural(left, "try", "tries"))
	var msg string
	if info.link != "" {
		msg = fit(
			wrong+fmt.Sprintf("Open %s to add the key to your app, then enter the 6-digit code: ", info.link),
			wrong+"Open the link shown before to add the key to your app, then enter the 6-digit code: ",
		)
	} else {
		// Show the key again, read back from the pending token (the State
		// holds no secret).
		u, found, err := a.lookup(ctx, r.User)
		if err != nil {
			return a.internal(ctx, "auth: read user", r.User, err)
		}
		if !found || u.PendingTOTP == nil {
			return reject(ReasonEnrollBadCode)
		}
		key := enroll.FormatSecret(u.PendingTOTP.Secret)
		digits := tokenDigits(u.PendingTOTP)
		msg = fit(
			wrong+fmt.Sprintf("Check the key in your app:\n%s\nEnter the %d-digit code: ", key, digits),
			fmt.Sprintf("Wrong code. Key:\n%s\nEnter the %d-digit code: ", key, digits),
		)
	}
	return a.enrollChallenge(ctx, r.User, r.Client, info, ReasonEnrollBadCode, msg)
}

// recoveryMessage shows the recovery codes in one Reply-Message.
func recoveryMessage(codes []string) string {
	list := strings.Join(codes, " ")
	return fit(
		"MFA is on. Save these recovery codes:\n"+list+"\nPress Enter: ",
		"Recovery codes:\n"+list+"\nPress Enter: ",
		list,
	)
}

// enrollDone accepts the login whose enrollment just finished, recording
// it, unless the user was disabled, locked or reset meanwhile.
func (a *Authenticator) enrollDone(ctx context.Context, name string) Decision {
	var out Decision
	err := a.st.UpdateLogin(ctx, name, func(v *store.User) error {
		now := a.now()
		if d, ok := barred(v, now); ok {
			out = d
			return errNoWrite
		}
		if !hasToken(v) {
			out = reject(ReasonNotEnrolled)
			return errNoWrite
		}
		v.LastSuccess = now
		out = Decision{Result: Accept, Reason: ReasonEnrolled}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errNoWrite):
		return out
	case errors.Is(err, store.ErrUserNotFound):
		return reject(ReasonUnknownUser)
	default:
		return a.internal(ctx, "auth: record success", name, err)
	}
}

// fit returns the first message that fits in one Reply-Message, or "".
func fit(msgs ...string) string {
	for _, m := range msgs {
		if len(m) <= maxReplyMessage {
			return m
		}
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
