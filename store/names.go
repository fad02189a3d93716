package store

import "fmt"

// MaxNameLen is the longest user name the store accepts, in bytes.
const MaxNameLen = 64

// ValidateName reports whether name may be stored: 1 to MaxNameLen bytes
// from [A-Za-z0-9._@+-], not starting with '-' (so a name can never be read
// as a command-line flag). The error wraps ErrInvalidName.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w %.24q...: %d bytes, at most %d allowed", ErrInvalidName, name, len(name), MaxNameLen)
	}
	if name[0] == '-' {
		return fmt.Errorf("%w %q: must not start with '-'", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w %q: byte %d (%q) is not one of A-Z a-z 0-9 . _ @ + -", ErrInvalidName, name, i, name[i])
		}
	}
	return nil
}

func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '@', '+', '-':
		return true
	}
	return false
}

// LookupName checks a name passed to a backend's Get, Update, UpdateLogin
// or Delete before the backend looks it up. An invalid name can never be
// stored, so the error wraps both ErrUserNotFound and ErrInvalidName:
// callers that treat unknown users alike need no extra case, and a name
// the backend could not even carry (a NUL, bytes that are not UTF-8 for
// PostgreSQL) never reaches it as a store failure.
func LookupName(op, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("store: %s: %w (%w)", op, ErrUserNotFound, err)
	}
	return nil
}
