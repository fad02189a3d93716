package radius

import (
	"fmt"
	"time"

	"github.com/otpgate/otpgate/auth"
)

// Options configures a Server. The daemon builds it from radiusd.toml, which
// owns every default; New and Reload fill none in and refuse invalid values.
type Options struct {
	// Clients is the NAS table; datagrams from any other source are dropped.
	Clients []Client

	// ReplyCacheTTL is how long an answer is kept to be resent to a
	// retransmission (RFC 5080 §2.2.2); ReplyCacheMaxEntries bounds the
	// answers and in-flight requests kept.
	ReplyCacheTTL        time.Duration
	ReplyCacheMaxEntries int

	// RejectDelay is the least time from receipt to an Access-Reject, the
	// same for every reject so its timing tells nothing. 0 answers at once.
	RejectDelay time.Duration

	// Handlers is how many requests are evaluated at once (each waits in
	// the Authenticator); QueueLen how many received requests one client
	// may have waiting for a handler before its further ones are dropped.
	// The queue holds 2*QueueLen, so one client at its share leaves as much
	// room for all the others. Both are fixed at New.
	Handlers int
	QueueLen int

	// Ready reports whether this server can decide a login now (its store
	// answers); Status-Server is answered only then, so a NAS that probes
	// health fails over from a node that would only drop. Nil: always.
	// Fixed at New.
	Ready func() bool
}

// Client is one NAS: where its datagrams come from, its shared secret, and
// how its requests are read and protected.
type Client struct {
	// Name identifies the client in logs, audit lines and metrics; empty
	// shows Address.
	Name string
	// Address is a CIDR ("10.0.0.0/24") or a bare IP (one host). A source
	// matching several clients gets the longest prefix.
	Address string
	Secret  string // RADIUS shared secret
	// RequireMessageAuthenticator drops requests without a
	// Message-Authenticator (BlastRADIUS, CVE-2024-3596).
	RequireMessageAuthenticator bool
	// LimitProxyState drops requests that carry Proxy-State but no
	// Message-Authenticator, for NASes that cannot send one.
	LimitProxyState bool
	// Mode is how the User-Password field is read (auth.ModeAppend, ...).
	Mode auth.Mode
}

// Validate reports the first invalid option, naming it. It checks the
// client table as New would, without logging its warnings.
func (o Options) Validate() error {
	if err := o.checkPool(); err != nil {
		return err
	}
	if err := o.checkReloadable(); err != nil {
		return err
	}
	_, err := newClientTable(o.Clients, nil)
	return err
}

// checkPool checks what is fixed at New.
func (o Options) checkPool() error {
	switch {
	case o.Handlers < 1:
		return fmt.Errorf("radius: Options.Handlers = %d: must be at least 1", o.Handlers)
	case o.QueueLen < 1:
		// An unbuffered queue would shed every Access-Request.
		return fmt.Errorf("radius: Options.QueueLen = %d: must be at least 1", o.QueueLen)
	}
	return nil
}

// checkReloadable checks what Reload changes, but the client table.
func (o Options) checkReloadable() error {
	switch {
	case o.ReplyCacheTTL <= 0:
		return fmt.Errorf("radius: Options.ReplyCacheTTL = %s: must be positive", o.ReplyCacheTTL)
	case o.ReplyCacheMaxEntries < 1:
		return fmt.Errorf("radius: Options.ReplyCacheMaxEntries = %d: must be at least 1", o.ReplyCacheMaxEntries)
	case o.RejectDelay < 0:
		return fmt.Errorf("radius: Options.RejectDelay = %s: must not be negative", o.RejectDelay)
	}
	return nil
}
