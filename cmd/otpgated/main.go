// Command otpgated is the otpgate RADIUS server: it checks password + TOTP
// for VPN gateways, portals and PAM hosts, and serves the otpgate CLI on a
// control socket. Usage: otpgated [-config PATH] [-check] [-version].
// SIGHUP reloads the config; SIGTERM or SIGINT drains and exits.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otpgate/otpgate/internal/daemon"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the program at once
	}()
	code := daemon.Main(ctx, version, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
