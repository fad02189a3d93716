package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/importer"
	"github.com/otpgate/otpgate/internal/safefile"
	"github.com/otpgate/otpgate/store"
)

// Import formats.
const (
	formatCSV = "csv"
	formatGA  = "google-authenticator"
)

func importCommand() *command {
	var (
		format string
		user   string
	)
	return &command{
		name:    "import",
		args:    "FILE --format csv|google-authenticator [--user NAME]",
		summary: "Import users and tokens from a CSV file or a ~/.google_authenticator file.",
		help: `All or nothing: if any entry is wrong, nothing is imported and the error
names the line. Existing user names fail the import (the error names their
lines too). FILE "-" is standard input.

csv: columns name,password,totp_secret,groups, optionally under a header
row of those names; groups separated by ';' (docs/users.md in the source
has the details). Passwords may be plaintext (hashed on import; argon2id
makes this slow for many users) or argon2id/bcrypt hashes (stored as they
are).

google-authenticator: a file written by the google-authenticator command
(TOTP, SHA1, 6 digits, 30 s); its scratch codes become recovery codes. The
user is the file's base name unless --user is given; for a file whose name
starts with '.' (like ~/.google_authenticator) --user is required. The user
gets no password: only otp-only clients accept them until one is set with
otpgate user passwd NAME.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&format, "format", "", "`FORMAT` of FILE: csv or google-authenticator (required)")
			fs.StringVar(&user, "user", "", "user `NAME` for a google-authenticator file")
		},
		minArgs: 1, maxArgs: 1,
		run: func(a *app, _ *flag.FlagSet, args []string) error {
			file := args[0]
			switch format {
			case formatCSV:
				if user != "" {
					return usagef("import: --user applies only to --format google-authenticator")
				}
			case formatGA:
				if user == "" {
					if file == "-" {
						return usagef("import: reading a google-authenticator file from standard input needs --user NAME")
					}
					base := filepath.Base(file)
					if strings.HasPrefix(base, ".") {
						return usagef("import: %q is not a user name; pass the user with --user NAME", base)
					}
					user = base
				}
				if err := checkName(user); err != nil {
					return err
				}
			case "":
				return usagef("import: --format is required: csv or google-authenticator")
			default:
				return usagef("import: unknown --format %q: want csv or google-authenticator", format)
			}
			var r io.Reader = a.stdin
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			var users []admin.ImportUser
			var lines []int // each user's line in a CSV file
			if format == formatCSV {
				var err error
				if users, lines, err = importer.ParseCSVLines(r); err != nil {
					return fmt.Errorf("import %s: %w; nothing was imported", file, err)
				}
			} else {
				u, err := importer.ParseGoogleAuthenticator(r, user)
				if err != nil {
					return fmt.Errorf("import %s: %w; nothing was imported", file, err)
				}
				users = []admin.ImportUser{u}
			}
			if len(users) == 0 {
				return fmt.Errorf("import %s: no users in the file; nothing was imported", file)
			}
			svc, err := a.service()
			if err != nil {
				return err
			}
			start := time.Now()
			n, err := svc.Import(a.ctx, users)
			if err != nil {
				if errors.Is(err, store.ErrUserExists) {
					if msg := existingUsers(a.ctx, svc, users, lines); msg != "" {
						return &advice{err: err, msg: fmt.Sprintf("import %s: %s; nothing was imported", file, msg)}
					}
				}
				if errors.Is(err, store.ErrUserExists) || errors.Is(err, store.ErrInvalidName) || errors.Is(err, admin.ErrInvalidImport) || errors.Is(err, admin.ErrInvalidGroup) {
					return fmt.Errorf("import %s: %w; nothing was imported", file, err)
				}
				return fmt.Errorf("import %s: %w", file, err)
			}
			fmt.Fprintf(a.stdout, "imported %d users in %.1fs\n", n, time.Since(start).Seconds())
			if n := countNoPassword(users); n == 1 && len(users) == 1 {
				noPasswordNote(a.stderr, users[0].Name+" has", users[0].Name)
			} else if n > 0 {
				noPasswordNote(a.stderr, fmt.Sprintf("%d of them have", n), "NAME")
			}
			return nil
		},
	}
}

func countNoPassword(users []admin.ImportUser) int {
	n := 0
	for _, u := range users {
		if u.Password == "" {
			n++
		}
	}
	return n
}

// existingUsers says which of users already exist, with their lines in the
// file when lines is set: "line 4: user "alice" already exists (and 1
// more: dave, line 6)". The store names one user and no line, so the
// daemon's user list is asked; "" when that fails or finds none.
func existingUsers(ctx context.Context, svc admin.Service, users []admin.ImportUser, lines []int) string {
	have, err := svc.ListUsers(ctx)
	if err != nil {
		return ""
	}
	exists := make(map[string]bool, len(have))
	for _, u := range have {
		exists[u.Name] = true
	}
	var found []string
	for i, u := range users {
		if !exists[u.Name] {
			continue
		}
		where := ""
		if i < len(lines) {
			where = fmt.Sprintf("line %d", lines[i])
		}
		if len(found) == 0 {
			if where != "" {
				where += ": "
			}
			found = append(found, fmt.Sprintf("%suser %q already exists", where, u.Name))
			continue
		}
		if where != "" {
			where = ", " + where
		}
		found = append(found, u.Name+where)
	}
	switch {
	case len(found) == 0:
		return ""
	case len(found) == 1:
		return found[0]
	}
	more := found[1:]
	if len(more) > 3 {
		more = append(more[:3:3], "...")
	}
	return fmt.Sprintf("%s (and %d more: %s)", found[0], len(found)-1, strings.Join(more, "; "))
}

// Version is set by cmd/otpgate from the linker (-X main.version).
var Version = "dev"

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "Print the version of otpgate.",
		help:    "Prints the version this binary was built from (git describe in packages).",
		run: func(a *app, _ *flag.FlagSet, _ []string) error {
			fmt.Fprintf(a.stdout, "otpgate %s\n", Version)
			return nil
		},
	}
}

func backupCommand() *command {
	return &command{
		name:    "backup",
		args:    "FILE",
		summary: "Write a consistent copy of the database to FILE.",
		help: `Works while otpgated runs (through its control socket) and while it does
not. The copy is written to a new temporary file beside FILE (mode 0600,
never through a symlink or into a file someone else put there), synced and
renamed to FILE, so FILE is never half written. The copy holds encrypted seeds; keep
the key file (key_file, default seed.key beside the database) with it, or
the seeds can't be read back. Restore: stop otpgated and copy FILE over
the database file.`,
		minArgs: 1, maxArgs: 1,
		run: func(a *app, _ *flag.FlagSet, args []string) error {
			svc, err := a.service()
			if err != nil {
				return err
			}
			n, err := writeAtomically(args[0], func(w io.Writer) (int64, error) { return svc.Backup(a.ctx, w) })
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Fprintf(a.stdout, "wrote %d bytes to %s\nkeep the key file %s with it: the seeds in the backup are encrypted with it\n", n, args[0], a.cfg.KeyPath())
			return nil
		},
	}
}

// writeAtomically writes path through a new temporary file with a random
// name in its directory (mode 0600; see safefile.Create: a symlink or file
// planted at path or beside it is never written through), fsyncs it and
// renames it over path. On failure path is untouched and the temporary
// file removed.
func writeAtomically(path string, write func(io.Writer) (int64, error)) (int64, error) {
	f, err := safefile.Create(path, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	n, err := write(f)
	if err != nil {
		return n, err
	}
	return n, f.Commit()
}
