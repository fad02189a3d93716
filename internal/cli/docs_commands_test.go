package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTextsNameRealCommands: every `otpgate COMMAND` that the sample
// configs and the Markdown guides tell an admin to run is a command this
// CLI has (the sample once said `otpgate unlock`). The code is read: code
// spans in TOML comments, and code spans and blocks in Markdown, where
// otpgate stands in command position (first, after sudo, a pipe, && ...).
func TestTextsNameRealCommands(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	for _, pattern := range []string{"*.toml", "*.md", "docs/*.md", "packaging/*.toml", "packaging/*.md", "bench/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 8 {
		t.Fatalf("found only %d files to check: %v", len(files), files)
	}
	commands := newCommands()
	mention := regexp.MustCompile(`(?m)(?:^[ \t]*|sudo[ \t]+|go run[ \t]+|&&[ \t]*|;[ \t]*|\|[ \t]*|\$\([ \t]*)(?:[\w./-]*/)?otpgate(?:[ \t]+-config[ \t]+\S+)?[ \t]+([a-z][a-z-]*)(?:[ \t]+([a-z][a-z-]*))?`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		for i, text := range commandTexts(f, string(b)) {
			if text == "" {
				continue
			}
			for _, m := range mention.FindAllStringSubmatch(text, -1) {
				checked++
				words := []string{m[1]}
				if m[2] != "" {
					words = append(words, m[2])
				}
				if words[0] == "help" {
					continue
				}
				if c, _ := commands.lookup(words); c == nil {
					t.Errorf("%s:%d: %q names no otpgate command (see otpgate --help)", rel, i+1, strings.TrimSpace(m[0]))
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d mentions of otpgate commands; the scan lost track", checked)
	}
	t.Logf("%d mentions of otpgate commands in %d files", checked, len(files))
}

// commandTexts returns, line by line, the code of a file: code spans in
// TOML comments; code spans, fenced and indented blocks in Markdown.
func commandTexts(name, text string) []string {
	span := regexp.MustCompile("`[^`]+`")
	spans := func(l string) string {
		var out []string
		for _, s := range span.FindAllString(l, -1) {
			out = append(out, strings.Trim(s, "`"))
		}
		return strings.Join(out, "\n")
	}
	lines := strings.Split(text, "\n")
	switch filepath.Ext(name) {
	case ".toml":
		for i, l := range lines {
			_, comment, _ := strings.Cut(l, "#")
			lines[i] = spans(comment)
		}
	case ".md":
		inFence := false
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inFence = !inFence
				lines[i] = ""
				continue
			}
			if !inFence && !strings.HasPrefix(l, "    ") {
				lines[i] = spans(l)
			}
		}
	}
	return lines
}
