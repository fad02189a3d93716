package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/store"
)

// noPasswordNote tells the admin where a user without a password can log
// in: only otp-only clients take the code alone.
func noPasswordNote(w io.Writer, who, name string) {
	fmt.Fprintf(w, "note: %s no password: only clients with mode = \"otp-only\" (the NAS checks the password) accept the code alone; append, challenge and auto clients refuse a user without one (audit reason no_password). Set one with: otpgate user passwd %s\n", who, name)
}

func userCommands() []*command {
	var (
		addGroups     stringList
		addStdin      bool
		addNoPassword bool
		pwStdin       bool
		pwClear       bool
		listJSON      bool
		showJSON      bool
		groupsClear   bool
	)
	return []*command{
		{
			name:    "user add",
			args:    "NAME [--group G]... [--password-stdin | --no-password]",
			summary: "Create a user.",
			help: `The password is asked twice on the terminal, without echo. Without a
terminal, pass it on standard input with --password-stdin (one line; only
the trailing newline is removed), or create an OTP-only user (no password:
for NAS that check the password themselves) with --no-password. Without a
terminal and without either flag the command fails rather than create a
user without a password by accident.

User names are 1-64 characters from A-Z a-z 0-9 . _ @ + - and do not start
with '-'. Groups (used by [auth] mfa_groups) may be repeated or
comma-separated: --group vpn --group admins, or --group vpn,admins.

Next step: otpgate enroll NAME`,
			flags: func(fs *flag.FlagSet) {
				addGroups = nil
				fs.Var(&addGroups, "group", "add the user to group `G` (repeatable, or comma-separated)")
				fs.BoolVar(&addStdin, "password-stdin", false, "read the password from the first line of standard input")
				fs.BoolVar(&addNoPassword, "no-password", false, "create an OTP-only user without a password")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				if err := checkName(name); err != nil {
					return err
				}
				if addStdin && addNoPassword {
					return usagef("user add: --password-stdin and --no-password exclude each other")
				}
				svc, err := a.service()
				if err != nil {
					return err
				}
				// Fail on a taken name before asking for a password.
				if _, err := svc.ShowUser(a.ctx, name); err == nil {
					return explain(store.ErrUserExists, name)
				}
				var pw string
				if !addNoPassword {
					if pw, err = a.readNewPassword(addStdin, "--no-password for an OTP-only user"); err != nil {
						return err
					}
				}
				if err := svc.AddUser(a.ctx, admin.NewUser{Name: name, Groups: addGroups, Password: pw}); err != nil {
					return explain(err, name)
				}
				kind := "with a password"
				if pw == "" {
					kind = "OTP-only, no password"
				}
				fmt.Fprintf(a.stdout, "added user %q (%s)\nnext: enroll a token with: otpgate enroll %s\n", name, kind, name)
				if pw == "" {
					noPasswordNote(a.stderr, name+" has", name)
				}
				return nil
			},
		},
		{
			name:    "user passwd",
			args:    "NAME [--password-stdin | --clear]",
			summary: "Set or remove a user's password.",
			help: `The new password is asked twice on the terminal, without echo, or read
from the first line of standard input with --password-stdin. --clear
removes the password: the user becomes OTP-only.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of standard input")
				fs.BoolVar(&pwClear, "clear", false, "remove the password (OTP-only user)")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				if err := checkName(name); err != nil {
					return err
				}
				if pwStdin && pwClear {
					return usagef("user passwd: --password-stdin and --clear exclude each other")
				}
				svc, err := a.service()
				if err != nil {
					return err
				}
				// Fail on an unknown user before asking for a password.
				if _, err := svc.ShowUser(a.ctx, name); err != nil {
					return explain(err, name)
				}
				var pw string
				if !pwClear {
					if pw, err = a.readNewPassword(pwStdin, "--clear to remove the password"); err != nil {
						return err
					}
				}
				if err := svc.SetPassword(a.ctx, name, pw); err != nil {
					return explain(err, name)
				}
				if pw == "" {
					fmt.Fprintf(a.stdout, "removed the password of %q (OTP-only now)\n", name)
					noPasswordNote(a.stderr, name+" has", name)
				} else {
					fmt.Fprintf(a.stdout, "set the password of %q\n", name)
				}
				return nil
			},
		},
		{
			name:    "user list",
			args:    "[--json]",
			summary: "List users.",
			help: `Columns: name, groups, whether a token is enrolled, whether the user is
locked out by code failures (and until when), whether the account is
disabled, and the last successful login.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&listJSON, "json", false, "print a JSON array")
			},
			minArgs: 0, maxArgs: 0,
			run: func(a *app, _ *flag.FlagSet, _ []string) error {
				svc, err := a.service()
				if err != nil {
					return err
				}
				users, err := svc.ListUsers(a.ctx)
				if err != nil {
					return err
				}
				if listJSON {
					if users == nil {
						users = []admin.UserInfo{}
					}
					return writeJSON(a.stdout, users)
				}
				if len(users) == 0 {
					fmt.Fprintln(a.stderr, "no users yet; add one with: otpgate user add NAME")
					return nil
				}
				now := time.Now()
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tGROUPS\tENROLLED\tLOCKED\tDISABLED\tLAST SUCCESS\tPASSWORD")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, orDash(strings.Join(u.Groups, ",")),
						yesNo(u.Enrolled), lockedText(u, now), yesNo(u.Disabled), timeText(u.LastSuccess), passwordSource(u))
				}
				return tw.Flush()
			},
		},
		{
			name:    "user show",
			args:    "NAME [--json]",
			summary: "Show one user, and why codes may be refused.",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&showJSON, "json", false, "print a JSON object")
			},
			minArgs: 1, maxArgs: 1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name := args[0]
				svc, err := a.service()
				if err != nil {
					return err
				}
				u, err := svc.ShowUser(a.ctx, name)
				if err != nil {
					return explain(err, name)
				}
				if showJSON {
					return writeJSON(a.stdout, u)
				}
				writeUser(a.stdout, u, time.Now())
				return nil
			},
		},
		simpleUserCommand("user disable", "Disable a user: every login is rejected until enabled.",
			"disabled user %q; enable it again with: otpgate user enable %s",
			func(a *app, svc admin.Service, name string) error { return svc.SetDisabled(a.ctx, name, true) }),
		simpleUserCommand("user enable", "Enable a disabled user.",
			"enabled user %q%.0s",
			func(a *app, svc admin.Service, name string) error { return svc.SetDisabled(a.ctx, name, false) }),
		simpleUserCommand("user delete", "Delete a user with its token and recovery codes.",
			"deleted user %q%.0s",
			func(a *app, svc admin.Service, name string) error { return svc.DeleteUser(a.ctx, name) }),
		simpleUserCommand("user unlock", "Clear a user's code failures and lockout.",
			"unlocked user %q%.0s",
			func(a *app, svc admin.Service, name string) error { return svc.Unlock(a.ctx, name) }),
		{
			name:    "user groups",
			args:    "NAME [G...] [--clear]",
			summary: "Show or replace a user's groups.",
			help: `Without groups, prints the user's groups, one a line. With groups, replaces
them (the list given is the new list). --clear removes all groups.`,
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&groupsClear, "clear", false, "remove all groups")
			},
			minArgs: 1, maxArgs: -1,
			run: func(a *app, _ *flag.FlagSet, args []string) error {
				name, groups := args[0], args[1:]
				if groupsClear && len(groups) > 0 {
					return usagef("user groups: --clear takes no groups")
				}
				svc, err := a.service()
				if err != nil {
					return err
				}
				if len(groups) == 0 && !groupsClear {
					u, err := svc.ShowUser(a.ctx, name)
					if err != nil {
						return explain(err, name)
					}
					for _, g := range u.Groups {
						fmt.Fprintln(a.stdout, g)
					}
					return nil
				}
				var gl stringList
				for _, g := range groups {
					_ = gl.Set(g)
				}
				if err := svc.SetGroups(a.ctx, name, gl); err != nil {
					return explain(err, name)
				}
				fmt.Fprintf(a.stdout, "groups of %q: %s\n", name, orDash(strings.Join(gl, ",")))
				return nil
			},
		},
	}
}

// simpleUserCommand is a command taking one NAME and no flags. done is a
// format with two %s-like verbs, both given the name.
func simpleUserCommand(name, summary, done string, do func(a *app, svc admin.Service, name string) error) *command {
	return &command{
		name:    name,
		args:    "NAME",
		summary: summary,
		minArgs: 1, maxArgs: 1,
		run: func(a *app, _ *flag.FlagSet, args []string) error {
			user := args[0]
			svc, err := a.service()
			if err != nil {
				return err
			}
			if err := do(a, svc, user); err != nil {
				return explain(err, user)
			}
			fmt.Fprintf(a.stdout, done+"\n", user, user)
			return nil
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeUser prints the human view of u, including every reason a code may
// be refused.
func writeUser(w io.Writer, u admin.UserInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	line("user", u.Name)
	line("groups", orDash(strings.Join(u.Groups, ", ")))
	status := "enabled"
	if u.Disabled {
		status = "DISABLED (every login is rejected; otpgate user enable " + u.Name + ")"
	}
	line("status", status)
	switch passwordSource(u) {
	case "ldap":
		line("password", "ldap (checked by the directory)")
	case "radius":
		line("password", "radius (checked by the upstream RADIUS server)")
	case "none":
		line("password", "none (OTP-only)")
	default:
		line("password", "local")
	}
	if u.Enrolled {
		line("token", "enrolled since "+timeText(u.EnrolledAt))
		if u.LastCodeAt.IsZero() {
			line("last accepted code", "never")
		} else {
			line("last accepted code", "at "+timeText(u.LastCodeAt)+" (codes from this 30 s step or earlier are refused as replays)")
		}
		left := fmt.Sprint(u.RecoveryLeft)
		if u.RecoveryLeft == 0 {
			left += " (issue new ones with: otpgate recovery-codes " + u.Name + ")"
		}
		line("recovery codes left", left)
	} else {
		line("token", "not enrolled (enroll with: otpgate enroll "+u.Name+")")
	}
	if u.PendingEnroll {
		line("enrollment", "pending (finish with: otpgate enroll "+u.Name+" --code CODE; or start over with: otpgate enroll "+u.Name+")")
	}
	line("code failures", fmt.Sprint(u.CodeFailures)+lastFailure(u))
	if u.LockedUntil.After(now) {
		line("locked until", timeText(u.LockedUntil)+" (codes are refused until then; otpgate user unlock "+u.Name+")")
	} else {
		line("locked until", "not locked")
	}
	line("created", timeText(u.Created))
	line("last success", timeText(u.LastSuccess))
	_ = tw.Flush()
}

// passwordSource is where u's password is checked: local, ldap, radius or
// none (a daemon older than this CLI reports only HasPassword).
func passwordSource(u admin.UserInfo) string {
	switch {
	case u.Password != "":
		return u.Password
	case u.HasPassword:
		return "local"
	}
	return "none"
}

func lastFailure(u admin.UserInfo) string {
	if u.LastFailure.IsZero() {
		return ""
	}
	return " (last at " + timeText(u.LastFailure) + ")"
}

func lockedText(u admin.UserInfo, now time.Time) string {
	if u.LockedUntil.After(now) {
		return "until " + timeText(u.LockedUntil)
	}
	return "no"
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
