package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// maxPasswordLen bounds a password read from standard input.
const maxPasswordLen = 1024

// readNewPassword gets a new password: the first line of standard input
// with fromStdin, else asked twice on the terminal without echo. alt names
// the flag that does without a password, for the error messages.
func (a *app) readNewPassword(fromStdin bool, alt string) (string, error) {
	if fromStdin {
		return readPasswordLine(a.stdin, alt)
	}
	f, ok := a.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usagef("standard input is not a terminal, so the password can't be asked: pass it with --password-stdin, or use %s", alt)
	}
	pw, err := a.promptHidden(f, "New password: ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", fmt.Errorf("empty password; nothing was changed (use %s)", alt)
	}
	again, err := a.promptHidden(f, "Repeat password: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords do not match; nothing was changed")
	}
	return pw, nil
}

// readPasswordLine reads one line and removes only its line ending.
func readPasswordLine(r io.Reader, alt string) (string, error) {
	br := bufio.NewReaderSize(r, maxPasswordLen+2)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("the password on standard input is longer than %d bytes", maxPasswordLen)
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	pw := strings.TrimSuffix(string(line), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("--password-stdin: standard input holds no password (an empty first line?); use %s for none", alt)
	}
	if len(pw) > maxPasswordLen {
		return "", fmt.Errorf("the password on standard input is longer than %d bytes", maxPasswordLen)
	}
	return pw, nil
}

// promptHidden asks on the terminal without echo. Ctrl-C (the context)
// restores the terminal and returns at once, even though the read blocks.
func (a *app) promptHidden(f *os.File, prompt string) (string, error) {
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	fmt.Fprint(a.stderr, prompt)
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(a.stderr)
		if r.err != nil {
			return "", fmt.Errorf("read the password: %w", r.err)
		}
		return string(r.b), nil
	case <-a.ctx.Done():
		_ = term.Restore(fd, state)
		fmt.Fprintln(a.stderr)
		return "", fmt.Errorf("interrupted; nothing was changed")
	}
}
