package control

import (
	"context"
	"errors"
	"net/http"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
)

// Errors of the control socket itself.
var (
	// ErrNotRunning: no daemon listens on the socket (missing or refused).
	// The CLI then opens the store itself.
	ErrNotRunning = errors.New("control: otpgated is not running")
	// ErrAccessDenied: the socket exists but this user may not use it.
	ErrAccessDenied = errors.New("control: access denied")
	// ErrAlreadyRunning: Listen found a live daemon on the socket path.
	ErrAlreadyRunning = errors.New("control: another otpgated is listening on the socket")
	// ErrUntrusted: Dial found a socket that someone other than root, this
	// user and the daemon's user could have put there, or that such a
	// user's process serves; nothing was sent to it.
	ErrUntrusted = errors.New("control: refusing to use the control socket")
)

// wireErrors maps sentinel errors to stable codes on the wire and back, so
// errors.Is works on the client as it does in process. First match wins.
var wireErrors = []struct {
	code   string
	err    error
	status int
}{
	{"user_not_found", store.ErrUserNotFound, http.StatusNotFound},
	{"user_exists", store.ErrUserExists, http.StatusConflict},
	{"invalid_name", store.ErrInvalidName, http.StatusBadRequest},
	{"already_enrolled", admin.ErrAlreadyEnrolled, http.StatusConflict},
	{"not_enrolled", admin.ErrNotEnrolled, http.StatusConflict},
	{"no_pending_enroll", admin.ErrNoPendingEnroll, http.StatusConflict},
	{"wrong_code", admin.ErrWrongCode, http.StatusUnprocessableEntity},
	{"enroll_discarded", admin.ErrEnrollDiscarded, http.StatusConflict},
	{"invalid_group", admin.ErrInvalidGroup, http.StatusBadRequest},
	{"invalid_import", admin.ErrInvalidImport, http.StatusBadRequest},
	{"invalid_ttl", admin.ErrInvalidTTL, http.StatusBadRequest},
	{"links_unsupported", admin.ErrLinksUnsupported, http.StatusNotImplemented},
	{"unsupported_hash", password.ErrUnsupportedHash, http.StatusBadRequest},
	{"db_locked", store.ErrLocked, http.StatusServiceUnavailable},
	{"wrong_key", store.ErrWrongKey, http.StatusInternalServerError},
	{"missing_key", store.ErrMissingKey, http.StatusInternalServerError},
	{"newer_schema", store.ErrNewerSchema, http.StatusInternalServerError},
	{"access_denied", ErrAccessDenied, http.StatusForbidden},
	{"self_unknown_user", ErrSelfUnknownUser, http.StatusNotFound},
	{"self_disabled", ErrSelfDisabled, http.StatusForbidden},
	{"canceled", context.Canceled, http.StatusServiceUnavailable},
	{"deadline_exceeded", context.DeadlineExceeded, http.StatusGatewayTimeout},
}

// errorBody is every non-2xx JSON reply.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
}

func encodeError(err error) (status int, body errorBody) {
	for _, we := range wireErrors {
		if errors.Is(err, we.err) {
			return we.status, errorBody{Error: err.Error(), Code: we.code}
		}
	}
	return http.StatusInternalServerError, errorBody{Error: err.Error()}
}

// remoteError is an error the daemon returned: its text, and the sentinel
// it wrapped there (nil when none), so errors.Is works across the socket.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func decodeError(status int, body errorBody) error {
	msg := body.Error
	if msg == "" {
		msg = "control: daemon answered " + http.StatusText(status)
	}
	var sentinel error
	for _, we := range wireErrors {
		if body.Code != "" && we.code == body.Code {
			sentinel = we.err
			break
		}
	}
	if sentinel == nil && status == http.StatusForbidden {
		sentinel = ErrAccessDenied
	}
	return &remoteError{msg: msg, sentinel: sentinel}
}
