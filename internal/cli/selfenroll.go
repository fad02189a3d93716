package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/control"
)

// runSelfEnroll is otpgate enroll without NAME: the caller enrolls
// themselves over the self-enrollment socket. The daemon decides who they
// are from the socket's peer credentials; nothing here names a user.
func runSelfEnroll(a *app, fs *flag.FlagSet, pngPath string) error {
	for _, f := range []string{"code", "force", "json", "expires"} {
		if isSet(fs, f) {
			return usagef("enroll: --%s needs a NAME (an admin's enrollment); without NAME you enroll yourself", f)
		}
	}
	sock, err := a.selfSocket()
	if err != nil {
		return err
	}
	sc, st, err := control.DialSelf(a.ctx, sock)
	switch {
	case errors.Is(err, control.ErrNotRunning):
		return fmt.Errorf("self-enrollment is not available on this host: %v; ask your administrator to enroll you or to send you a link", err)
	case err != nil:
		return selfErr(err)
	}
	defer sc.Close()
	if st.Enrolled {
		return fmt.Errorf("you (%s) already have an active token; to replace it (a lost or new phone) ask your administrator to reset it", st.User)
	}
	enr, err := sc.Begin(a.ctx)
	if err != nil {
		return selfErr(err)
	}
	flow := enroll.Flow{
		In:       &ctxReader{ctx: a.ctx, r: a.stdin},
		Out:      a.stdout,
		Issuer:   enr.Issuer,
		User:     enr.User,
		Secret:   enr.Secret,
		PNGPath:  pngPath,
		Activate: sc.Activate,
	}
	fmt.Fprintf(a.stdout, "Enrolling %s (your login on this host) for two-factor login.\n\n", enr.User)
	if err := flow.Run(a.ctx); err != nil {
		if a.ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(a.stdout)
			return errors.New("interrupted; the new token was not activated")
		}
		return selfErr(err)
	}
	return nil
}

// selfSocket is the self-enrollment socket: control.enroll_socket when the
// configuration can be read (-config, or found as usual), else
// control.DefaultSelfSocket: an ordinary user can't read radiusd.toml.
func (a *app) selfSocket() (string, error) {
	if a.configFlag != "" {
		cfg, err := a.loadConfig()
		if err != nil {
			return "", err
		}
		if cfg.Control.EnrollSocket == "" {
			return "", fmt.Errorf("self-enrollment is off: no control.enroll_socket in %s", cfg.Path)
		}
		return cfg.Control.EnrollSocket, nil
	}
	if path, err := findConfig(""); err == nil {
		if cfg, err := config.LoadWithoutSecrets(path); err == nil && cfg.Control.EnrollSocket != "" {
			return cfg.Control.EnrollSocket, nil
		}
	}
	return control.DefaultSelfSocket, nil
}

// selfErr says what a user (not an admin) can do about err.
func selfErr(err error) error {
	switch {
	case errors.Is(err, admin.ErrEnrollDiscarded):
		return errors.New("too many wrong codes: the enrollment was discarded and no token was activated; run otpgate enroll again (check the phone's clock)")
	case errors.Is(err, enroll.ErrAborted):
		return fmt.Errorf("%w; run otpgate enroll again to start over", err)
	}
	return err
}
