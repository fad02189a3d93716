// Package docs_test holds the Markdown documentation to the repository: every
// relative link resolves, to a heading where it names one, and
// docs/configuration.md lists exactly the keys radiusd.toml accepts. It is a
// test-only package; `go test ./docs` runs it.
package docs_test

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/otpgate/otpgate/internal/config"
)

// repoRoot is the repository root: tests run in docs/.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found above docs/: %v", err)
	}
	return root
}

// markdownFiles lists every .md file of the repository (README.md, docs/,
// bench/, packaging/, ...), skipping hidden directories and testdata.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"README.md", "docs/configuration.md", "bench/README.md"} {
		if !slices.Contains(files, filepath.Join(root, must)) {
			t.Fatalf("%s not found; the link check would miss it", must)
		}
	}
	return files
}

var (
	fence       = regexp.MustCompile("^\\s*(```|~~~)")
	codeSpan    = regexp.MustCompile("`[^`]*`")
	inlineLink  = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLinkDef  = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	hasScheme   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	atxHeading  = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$`)
	htmlAnchor  = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	mdLinkText  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag     = regexp.MustCompile(`<[^>]+>`)
	tableRow    = regexp.MustCompile(`^\s*\|`)
	soleKeyCell = regexp.MustCompile("^`([^`]+)`$")
)

// proseLines returns the lines of a Markdown file outside fenced code
// blocks, numbered from 1; code blocks are blanked so numbers stay right.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, l := range lines {
		if fence.MatchString(l) {
			inFence = !inFence
			lines[i] = ""
			continue
		}
		if inFence {
			lines[i] = ""
		}
	}
	return lines
}

// links returns the link targets of one line: inline links and images
// ([text](target), ![alt](src)) and reference definitions ([ref]: target).
// Code spans are not links.
func links(line string) []string {
	line = codeSpan.ReplaceAllString(line, "``")
	var out []string
	for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
		out = append(out, m[1])
	}
	if m := refLinkDef.FindStringSubmatch(line); m != nil {
		out = append(out, m[1])
	}
	return out
}

// slug is GitHub's anchor for a heading: the rendered text lower-cased,
// everything but letters, numbers, marks, '-', '_' and spaces dropped, and
// each space turned into '-'.
func slug(heading string) string {
	text := mdLinkText.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-', unicode.IsLetter(r), unicode.IsNumber(r), unicode.IsMark(r), unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors of a Markdown file: one per heading, with
// GitHub's -1, -2, ... for repeated headings, and explicit <a name|id>.
func anchors(text string) map[string]bool {
	set := map[string]bool{}
	seen := map[string]int{}
	for _, l := range proseLines(text) {
		if m := atxHeading.FindStringSubmatch(l); m != nil {
			s := slug(m[2])
			if n := seen[s]; n > 0 {
				set[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				set[s] = true
			}
			seen[s]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(l, -1) {
			set[m[1]] = true
		}
	}
	return set
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Connect a VPN", "connect-a-vpn"},
		{"4. Message-Authenticator (BlastRADIUS)", "4-message-authenticator-blastradius"},
		{`"The code is not accepted"`, "the-code-is-not-accepted"},
		{"Cisco ASA (AnyConnect / Secure Client)", "cisco-asa-anyconnect--secure-client"},
		{"On the SSH host, way 1: otpgate-pam (pam_exec)", "on-the-ssh-host-way-1-otpgate-pam-pam_exec"},
		{"The `otpgate` command", "the-otpgate-command"},
		{"Durability is tested, not assumed", "durability-is-tested-not-assumed"},
		{"See [Operations](operations.md) — **now**", "see-operations--now"},
	} {
		if got := slug(tc.heading); got != tc.want {
			t.Errorf("slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

// TestRelativeLinksResolve checks every relative link in the repository's
// Markdown files: the file or directory must exist inside the repository,
// and a #fragment must name a heading of the Markdown file it points to.
// Links with a scheme (https:, mailto:) are not followed.
func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	anchorCache := map[string]map[string]bool{}
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchorCache[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		anchorCache[path] = anchors(string(b))
		return anchorCache[path], nil
	}
	checked := 0
	for _, file := range markdownFiles(t, root) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for n, line := range proseLines(string(b)) {
			for _, target := range links(line) {
				if hasScheme.MatchString(target) || strings.HasPrefix(target, "//") {
					continue
				}
				checked++
				if err := checkLink(root, file, target, anchorsOf); err != nil {
					t.Errorf("%s:%d: link %q: %v", rel, n+1, target, err)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative links found: the link parser is broken")
	}
}

// checkLink resolves target, a link in file, against the repository.
func checkLink(root, file, target string, anchorsOf func(string) (map[string]bool, error)) error {
	pathPart, fragment, _ := strings.Cut(target, "#")
	p, err := url.PathUnescape(pathPart)
	if err != nil {
		return err
	}
	dest := file
	switch {
	case p == "":
	case strings.HasPrefix(p, "/"):
		dest = filepath.Join(root, filepath.FromSlash(p))
	default:
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
	}
	if r, err := filepath.Rel(root, dest); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return fmt.Errorf("points outside the repository")
	}
	info, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("no such file or directory")
	}
	if fragment == "" {
		return nil
	}
	if info.IsDir() || !strings.HasSuffix(dest, ".md") {
		return fmt.Errorf("#%s: anchors are checked only in Markdown files", fragment)
	}
	set, err := anchorsOf(dest)
	if err != nil {
		return err
	}
	if !set[fragment] {
		return fmt.Errorf("no heading with anchor #%s in %s", fragment, filepath.Base(dest))
	}
	return nil
}

// documentedKeys reads the keys docs/configuration.md documents. The rule:
// a key is a table row whose first cell is exactly one code span, written as
// its path in the schema: `version` for a top-level key, `auth.skew` for
// skew in [auth], `client.mode` for mode in each [[client]]. Any such row
// counts, whatever table it is in, so a misspelt or stale key cannot hide;
// a first cell with code that is not one code span ("`a` / `b`") is a
// problem, so keys cannot be bundled into one row either.
func documentedKeys(text string) (keys map[string][]int, problems []string) {
	keys = map[string][]int{}
	for n, line := range proseLines(text) {
		if !tableRow.MatchString(line) {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		first := strings.TrimSpace(cells[0])
		if m := soleKeyCell.FindStringSubmatch(first); m != nil {
			keys[m[1]] = append(keys[m[1]], n+1)
		} else if strings.Contains(first, "`") {
			problems = append(problems, fmt.Sprintf("line %d: first cell %s is not one key in backticks", n+1, first))
		}
	}
	return keys, problems
}

// TestConfigurationReferenceMatchesSchema holds docs/configuration.md to
// config.Keys(), the keys Load accepts (derived from Config's toml tags):
// every key has exactly one row, and every row names a key.
// internal/config's TestSampleDocumentsEveryKey does the same for the
// sample radiusd.toml.
func TestConfigurationReferenceMatchesSchema(t *testing.T) {
	b, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented, problems := documentedKeys(string(b))
	for _, p := range problems {
		t.Errorf("configuration.md %s", p)
	}
	schema := config.Keys()
	if len(schema) == 0 {
		t.Fatal("config.Keys() is empty")
	}
	for _, key := range schema {
		switch lines := documented[key]; len(lines) {
		case 0:
			t.Errorf("configuration.md has no row for %s (a key of radiusd.toml)", key)
		case 1:
		default:
			t.Errorf("configuration.md documents %s %d times (lines %v)", key, len(lines), lines)
		}
	}
	for key, lines := range documented {
		if !slices.Contains(schema, key) {
			t.Errorf("configuration.md:%d: `%s` is not a key of radiusd.toml (keys: %s)", lines[0], key, strings.Join(schema, ", "))
		}
	}
}

func TestDocumentedKeysRule(t *testing.T) {
	md := "| key | default |\n|---|---|\n| `auth.skew` | `1` |\n| `[auth] mode` | x |\n| plain | x |\n" +
		"```\n| `in.code` | x |\n```\n| `a` / `b` | x |\n"
	got, problems := documentedKeys(md)
	want := map[string][]int{"auth.skew": {3}, "[auth] mode": {4}}
	if len(got) != len(want) {
		t.Fatalf("documentedKeys = %v, want %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("documentedKeys[%q] = %v, want %v", k, got[k], v)
		}
	}
	if len(problems) != 1 || !strings.HasPrefix(problems[0], "line 9:") {
		t.Errorf("problems = %q, want one for line 9", problems)
	}
}
