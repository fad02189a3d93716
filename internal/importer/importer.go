// Package importer reads users from other systems into admin.ImportUser
// values: a CSV export (ParseCSV) and the ~/.google_authenticator file of
// libpam-google-authenticator (ParseGoogleAuthenticator).
//
// Parsing is complete before anything is written: a file with any error
// yields no users, and the error names the line. Storing the users all or
// nothing is the store's job (admin.Service.Import). Errors never contain a
// password, secret or scratch code.
package importer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/otpgate/otpgate/enroll"
	"github.com/otpgate/otpgate/enroll/recovery"
	"github.com/otpgate/otpgate/internal/admin"
	"github.com/otpgate/otpgate/internal/password"
)

// CSVHeader is the optional first row of a CSV import, and the column order.
var CSVHeader = []string{"name", "password", "totp_secret", "groups"}

// ParseCSV reads users from CSV (RFC 4180, as encoding/csv reads it) with
// the columns name,password,totp_secret,groups. The first row may be exactly
// that header. Per column:
//
//   - name: required, unique in the file (the store checks the character set).
//   - password: plaintext, a hash password.IsHash accepts (argon2id PHC,
//     bcrypt), or empty for none. Other "$id$..." or "{SCHEME}..." hashes
//     (e.g. sha512-crypt from /etc/shadow) are refused rather than taken as a
//     plaintext password.
//   - totp_secret: base32 in any case, spaces and '=' padding allowed, at
//     least 16 bytes (128 bits, the RFC 4226 minimum); empty = no token.
//   - groups: separated by ';', spaces around names ignored; may be empty.
//
// Empty lines are skipped. The file is streamed, so 100,000 rows are fine.
// An error names the line: "importer: line 7: totp_secret: not base32".
func ParseCSV(r io.Reader) ([]admin.ImportUser, error) {
	users, _, err := ParseCSVLines(r)
	return users, err
}

// ParseCSVLines is ParseCSV that also returns the line of the file each
// user came from, so a later error about a user (it already exists) can
// name its line.
func ParseCSVLines(r io.Reader) ([]admin.ImportUser, []int, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1 // checked here, with a clearer message
	var users []admin.ImportUser
	var lines []int
	firstLine := map[string]int{} // name -> line
	for row := 0; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, nil, fmt.Errorf("importer: line %d: csv: %w", pe.Line, pe.Err)
			}
			return nil, nil, fmt.Errorf("importer: read csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if row == 0 {
			// Spreadsheets often start a UTF-8 CSV file with a byte order mark.
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if slices.Equal(rec, CSVHeader) {
				continue
			}
			if strings.EqualFold(strings.TrimSpace(rec[0]), "name") {
				return nil, nil, fmt.Errorf("importer: line %d: a header row must be exactly %s", line, strings.Join(CSVHeader, ","))
			}
		}
		if len(rec) != len(CSVHeader) {
			hint := ""
			if len(rec) > len(CSVHeader) && strings.HasPrefix(rec[1], "$argon2") {
				hint = "; an argon2id hash contains commas, so put it in double quotes"
			}
			return nil, nil, fmt.Errorf("importer: line %d: %d columns, want %d (%s)%s", line, len(rec), len(CSVHeader), strings.Join(CSVHeader, ","), hint)
		}
		u, col, err := parseRow(rec)
		if err != nil {
			return nil, nil, fmt.Errorf("importer: line %d: %s: %w", line, col, err)
		}
		if first, dup := firstLine[u.Name]; dup {
			return nil, nil, fmt.Errorf("importer: line %d: name %q already on line %d", line, u.Name, first)
		}
		firstLine[u.Name] = line
		users = append(users, u)
		lines = append(lines, line)
	}
	return users, lines, nil
}

// parseRow turns one record into a user; on error it names the column.
func parseRow(rec []string) (admin.ImportUser, string, error) {
	var u admin.ImportUser
	name := rec[0]
	if err := checkName(name); err != nil {
		return u, "name", err
	}
	u.Name = name

	pw := rec[1]
	if looksLikeHash(pw) && !password.IsHash(pw) {
		return u, "password", errors.New("looks like a password hash in an unsupported format (supported: argon2id PHC string, bcrypt $2a$/$2b$/$2y$); give the plaintext or a supported hash")
	}
	u.Password = pw

	if s := rec[2]; strings.TrimSpace(s) != "" {
		secret, err := enroll.DecodeSecret(s)
		if err != nil {
			return u, "totp_secret", err
		}
		u.Secret = secret
	}

	u.Groups = splitGroups(rec[3])
	return u, "", nil
}

// checkName catches what would otherwise fail later in the store with a
// less precise position; the store's own rules (store.ValidateName) still
// apply on import.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%q has leading or trailing spaces", name)
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", name)
		}
	}
	return nil
}

// looksLikeHash reports whether pw is shaped like a crypt(3) "$id$..." or
// LDAP "{SCHEME}..." hash, so it is not silently taken as a plaintext.
func looksLikeHash(pw string) bool {
	if strings.HasPrefix(pw, "$") && strings.Count(pw, "$") >= 3 && !strings.ContainsAny(pw, " \t") {
		return true
	}
	if strings.HasPrefix(pw, "{") {
		if end := strings.IndexByte(pw, '}'); end > 1 && end < 20 {
			scheme := pw[1:end]
			return strings.ToUpper(scheme) == scheme && strings.Trim(scheme, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
		}
	}
	return false
}

// splitGroups splits "a; b;;c" into [a b c], dropping empties and repeats.
func splitGroups(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var groups []string
	for _, g := range strings.Split(s, ";") {
		g = strings.TrimSpace(g)
		if g == "" || slices.Contains(groups, g) {
			continue
		}
		groups = append(groups, g)
	}
	return groups
}

// maxGALines bounds a ~/.google_authenticator file: a secret, a handful of
// options and scratch codes (the google-authenticator command writes at most
// 10 by default).
const maxGALines = 1000

// ParseGoogleAuthenticator reads a ~/.google_authenticator file as written by
// the google-authenticator command (libpam-google-authenticator) and returns
// it as an import of user: the first line is the base32 secret, lines
// starting with `" ` are options, and the remaining lines are 8-digit scratch
// codes, which become recovery codes.
//
// Options:
//   - TOTP_AUTH: expected (time-based codes).
//   - HOTP_COUNTER: refused; otpgate supports only time-based (TOTP) tokens.
//   - STEP_SIZE: must be 30 (otpgate's period); anything else is refused.
//   - RATE_LIMIT, WINDOW_SIZE, DISALLOW_REUSE: ignored. otpgate's own replay
//     protection (each time step once), code window and per-user lockout
//     apply instead.
//
// Any other option is refused, so a file whose meaning we do not know is not
// imported half-understood. The secret must be at least 16 bytes (128 bits;
// current google-authenticator writes 16 bytes, very old versions 10, and
// such tokens must be re-enrolled).
func ParseGoogleAuthenticator(r io.Reader, user string) (admin.ImportUser, error) {
	u := admin.ImportUser{Name: user}
	if err := checkName(user); err != nil {
		return admin.ImportUser{}, fmt.Errorf("importer: google-authenticator: user: %w", err)
	}
	fail := func(line int, format string, args ...any) (admin.ImportUser, error) {
		return admin.ImportUser{}, fmt.Errorf("importer: google-authenticator file: line %d: "+format, append([]any{line}, args...)...)
	}
	sc := bufio.NewScanner(r)
	line := 0
	seen := map[string]bool{}
	for sc.Scan() {
		line++
		if line > maxGALines {
			return fail(line, "too many lines (at most %d)", maxGALines)
		}
		text := strings.TrimRight(sc.Text(), " \t\r")
		if line == 1 {
			secret, err := enroll.DecodeSecret(text)
			if err != nil {
				return fail(line, "secret: %w", err)
			}
			u.Secret = secret
			continue
		}
		if text == "" {
			continue
		}
		if opt, ok := strings.CutPrefix(text, `"`); ok {
			if err := checkGAOption(opt); err != nil {
				return fail(line, "%w", err)
			}
			continue
		}
		code, ok := recovery.Normalize(text)
		if !ok || len(code) != recovery.ScratchLen || text != code {
			return fail(line, "neither an option (\" NAME ...) nor an 8-digit scratch code")
		}
		if !seen[code] {
			seen[code] = true
			u.RecoveryCodes = append(u.RecoveryCodes, code)
		}
	}
	if err := sc.Err(); err != nil {
		return admin.ImportUser{}, fmt.Errorf("importer: google-authenticator file: read: %w", err)
	}
	if line == 0 {
		return admin.ImportUser{}, errors.New("importer: google-authenticator file: empty (the first line must be the secret)")
	}
	return u, nil
}

// checkGAOption accepts or refuses one option line (without the `" `).
func checkGAOption(opt string) error {
	fields := strings.Fields(opt)
	if len(fields) == 0 {
		return errors.New("empty option line")
	}
	name, args := fields[0], fields[1:]
	switch name {
	case "TOTP_AUTH", "RATE_LIMIT", "WINDOW_SIZE", "DISALLOW_REUSE":
		return nil
	case "HOTP_COUNTER":
		return errors.New("HOTP_COUNTER: this is a counter-based (HOTP) token; otpgate supports only time-based (TOTP) tokens, so enroll the user again with: otpgate enroll NAME")
	case "STEP_SIZE":
		if len(args) == 1 && args[0] == "30" {
			return nil
		}
		return fmt.Errorf("STEP_SIZE %s: otpgate uses 30-second codes only; enroll the user again with: otpgate enroll NAME", strings.Join(args, " "))
	default:
		return fmt.Errorf("unknown option %q", truncate(name, 32))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
