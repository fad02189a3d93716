// Package auth makes the access decision for one login attempt, free of
// packets: password check, TOTP code check with replay protection, recovery
// codes, per-user lockout and backoff, challenge State, and MFA policy.
package auth

import "time"

// Mode says how the User-Password field is to be read.
type Mode string

const (
	ModeAppend    Mode = "append"    // password followed by the 6-digit code
	ModeChallenge Mode = "challenge" // password, then an Access-Challenge for the code
	ModeOTPOnly   Mode = "otp-only"  // the NAS checked the password; the field is the code
	ModeAuto      Mode = "auto"      // append when the field ends in a code, else challenge
)

// Request is one login attempt as the transport saw it.
type Request struct {
	User     string
	Password string // the decrypted User-Password field, never logged
	State    []byte // State attribute of a challenge answer; nil otherwise
	Client   string // client (NAS) name from the config
	Station  string // Calling-Station-Id, else the source address
	Mode     Mode   // effective mode for this client
}

// Result is the outcome class of a Decision.
type Result int

const (
	Reject Result = iota
	Accept
	Challenge
	Drop // overloaded: send nothing, the NAS will retransmit
)

func (r Result) String() string {
	switch r {
	case Accept:
		return "accept"
	case Challenge:
		return "challenge"
	case Drop:
		return "drop"
	default:
		return "reject"
	}
}

// Reason is a bounded enum for audit logs and metric labels. It is never sent
// to the NAS.
type Reason string

const (
	ReasonOK            Reason = "ok"
	ReasonUnknownUser   Reason = "unknown_user"
	ReasonDisabled      Reason = "disabled"
	ReasonBadPassword   Reason = "bad_password"
	ReasonNoPassword    Reason = "no_password" // a user without a password on a client that is not otp-only
	ReasonBadCode       Reason = "bad_code"
	ReasonCodeReused    Reason = "code_reused"
	ReasonLocked        Reason = "locked"
	ReasonNotEnrolled   Reason = "not_enrolled"
	ReasonBadState      Reason = "bad_state"
	ReasonMalformed     Reason = "malformed"
	ReasonOverload      Reason = "overload"
	ReasonInternal      Reason = "internal_error"
	ReasonUnavailable   Reason = "store_unavailable" // Drop: the database cannot be reached
	ReasonGrace         Reason = "grace_no_mfa"      // accepted on password alone during grace
	ReasonNoMFARequired Reason = "mfa_not_required"  // accepted on password alone by policy
	ReasonRecoveryCode  Reason = "recovery_code"     // accepted with a recovery code

	// First-login enrollment (Options.EnrollAtLogin).
	ReasonEnrollOffered   Reason = "enroll_offered"   // Challenge: add this key (or link), enter a code
	ReasonEnrollBadCode   Reason = "enroll_bad_code"  // the code did not match: a new Challenge, or the Reject after the last try
	ReasonEnrollConfirmed Reason = "enroll_confirmed" // Challenge: the token is active; here are the recovery codes
	ReasonEnrolled        Reason = "enrolled"         // accepted after the recovery codes were shown
)

// Decision is what the transport turns into a packet.
type Decision struct {
	Result  Result
	Reason  Reason
	State   []byte // Challenge only: opaque, single use
	Message string // Reply-Message for Challenge (prompt) or a safe Reject hint; "" for none
	Elapsed time.Duration
}
