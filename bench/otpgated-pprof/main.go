// Command otpgated-pprof is otpgated with net/http/pprof on 127.0.0.1:6060,
// for profiling under load only (never deploy it):
//
//	go build -o /tmp/otpgated-pprof ./bench/otpgated-pprof
//	/tmp/otpgated-pprof -config radiusd.toml &
//	otpgate bench -users users.csv -secret-file secret -c 32 -duration 20s &
//	go tool pprof -top http://127.0.0.1:6060/debug/pprof/profile?seconds=10
package main

import (
	"context"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/otpgate/otpgate/internal/daemon"
)

func main() {
	go http.ListenAndServe("127.0.0.1:6060", nil)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(daemon.Main(ctx, "pprof", os.Args[1:], os.Stdout, os.Stderr))
}
