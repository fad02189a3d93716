// Command otpgate is the otpgate admin and enrollment CLI: users, TOTP
// enrollment with terminal QR codes, recovery codes, import and backup. It
// talks to otpgated over its control socket, or opens the database directly
// when no daemon runs. See `otpgate --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otpgate/otpgate/internal/cli"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cli.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the program at once
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
