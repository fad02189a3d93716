package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/web"
)

// linkFlags are the enroll flags for one-time links.
type linkFlags struct {
	link       bool
	allPending bool
	expires    time.Duration
}

func (l *linkFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&l.link, "link", false, "print a one-time link to the enrollment web page instead of enrolling here")
	fs.DurationVar(&l.expires, "expires", admin.DefaultLinkTTL, "with --link: how long the link works (`DURATION`, up to 720h)")
	fs.BoolVar(&l.allPending, "all-pending", false, "with --link: a link for every user who must use MFA and has no token")
}

// runLinks is otpgate enroll NAME --link, or --link --all-pending.
func runLinks(a *app, fs *flag.FlagSet, args []string, lf linkFlags, asJSON bool) error {
	for _, f := range []string{"png", "code", "force"} {
		if isSet(fs, f) {
			return usagef("enroll: --%s does not go with --link (the page shows the QR code and takes the code)", f)
		}
	}
	switch {
	case lf.allPending && len(args) > 0:
		return usagef("enroll: --all-pending takes no NAME")
	case !lf.allPending && len(args) == 0:
		return usagef("enroll --link: missing NAME (or --all-pending)")
	}
	if len(args) == 1 {
		if err := checkName(args[0]); err != nil {
			return err
		}
	}
	svc, err := a.service()
	if err != nil {
		return err
	}
	cfg := a.cfg
	if cfg.Web.PublicURL == "" {
		return fmt.Errorf("no [web] public_url in %s: links need the address of the enrollment page (set [web] listen and public_url, then restart otpgated)", cfg.Path)
	}
	if cfg.Web.Listen == "" {
		fmt.Fprintf(a.stderr, "note: [web] listen is not set in %s: otpgated does not serve the page these links point to\n", cfg.Path)
	}
	names := args
	if lf.allPending {
		users, err := svc.ListUsers(a.ctx)
		if err != nil {
			return err
		}
		names = names[:0:0]
		for _, u := range users {
			if mustEnroll(cfg.Auth, u) {
				names = append(names, u.Name)
			}
		}
	}
	var issued []web.Link
	failed := 0
	for _, name := range names {
		l, err := web.IssueLink(a.ctx, svc, cfg.Web.PublicURL, name, lf.expires)
		if err != nil {
			if !lf.allPending {
				return explainLink(err, name)
			}
			failed++
			fmt.Fprintf(a.stderr, "otpgate: %s: %v\n", name, explainLink(err, name))
			continue
		}
		issued = append(issued, l)
	}
	switch {
	case asJSON && lf.allPending:
		if issued == nil {
			issued = []web.Link{}
		}
		if err := writeJSON(a.stdout, issued); err != nil {
			return err
		}
	case asJSON:
		if err := writeJSON(a.stdout, issued[0]); err != nil {
			return err
		}
	default:
		for _, l := range issued {
			fmt.Fprintf(a.stdout, "%s\t%s\t(works once, until %s)\n", l.User, l.URL, l.Expires.Local().Format("2006-01-02 15:04 MST"))
		}
		if lf.allPending && len(names) == 0 {
			fmt.Fprintln(a.stderr, "no user needs a link: everyone who must use MFA has a token (or is disabled)")
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d links not issued (see above)", failed, len(names))
	}
	return nil
}

// mustEnroll: u must use MFA under policy p, has no token and may log in.
func mustEnroll(p config.AuthConfig, u admin.UserInfo) bool {
	if u.Enrolled || u.Disabled {
		return false
	}
	if p.MFA != "optional" {
		return true
	}
	return slices.ContainsFunc(u.Groups, func(g string) bool { return slices.Contains(p.MFAGroups, g) })
}

func explainLink(err error, name string) error {
	if errors.Is(err, admin.ErrAlreadyEnrolled) {
		return fmt.Errorf("user %q already has a token; a link never replaces one (a lost phone: otpgate reset %s, then issue the link)", name, name)
	}
	return explain(err, name)
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// IssueEnrollLink implements admin.Service.
func (s *directService) IssueEnrollLink(ctx context.Context, name string, ttl time.Duration) (admin.EnrollLink, error) {
	return call(s, func(l admin.Service) (admin.EnrollLink, error) { return l.IssueEnrollLink(ctx, name, ttl) })
}
