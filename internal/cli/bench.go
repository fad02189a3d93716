package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"

	"github.com/otpgate/otpgate/bench/loadgen"
)

// benchCommand is the RADIUS load generator; loadgen parses its flags.
func benchCommand() *command {
	return &command{
		name:    "bench",
		args:    "-users FILE [-server HOST:PORT] (-secret-file F | -secret S) [FLAGS]",
		summary: "Load-test a RADIUS server with real, never reused TOTP codes.",
		help:    benchHelp(),
		rawArgs: true,
		run: func(a *app, _ *flag.FlagSet, args []string) error {
			if code := loadgen.Main(a.ctx, args, a.stdout, a.stderr); code != 0 {
				return exitCode{code}
			}
			return nil
		},
	}
}

// benchHelp is loadgen's own usage text, which lists its flags.
func benchHelp() string {
	var b bytes.Buffer
	loadgen.Main(context.Background(), []string{"-h"}, io.Discard, &b)
	return strings.TrimRight(b.String(), "\n")
}
