package auth

import (
	"context"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/password"
	"github.com/otpgate/otpgate/store"
)

// codes precomputes alice's code for each of n consecutive steps, advancing
// the fake clock one step per request during the benchmark.
func benchCodes(e *env, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = e.code("alice", i)
	}
	return out
}

// BenchmarkAuthenticateOTPOnly: a code check with its durable store update
// (no password hash).
func BenchmarkAuthenticateOTPOnly(b *testing.B) {
	e := newEnv(b, nil)
	codes := benchCodes(e, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := e.a.Authenticate(ctx, Request{User: "alice", Mode: ModeOTPOnly, Client: "vpn", Password: codes[i]})
		if d.Result != Accept {
			b.Fatalf("request %d: %s/%s", i, d.Result, d.Reason)
		}
		e.clk.Advance(30 * time.Second)
	}
}

// BenchmarkAuthenticateAppend: password (argon2id with the default cost) +
// code, as most VPN logins are.
func BenchmarkAuthenticateAppend(b *testing.B) {
	e := newEnv(b, func(o *Options) { o.PasswordHashParams = password.DefaultParams })
	hash, err := password.Hash("correct horse", password.DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	e.update("alice", func(u *store.User) { u.PasswordHash = hash })
	codes := benchCodes(e, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d := e.a.Authenticate(ctx, Request{User: "alice", Mode: ModeAppend, Client: "vpn", Password: "correct horse" + codes[i]})
		if d.Result != Accept {
			b.Fatalf("request %d: %s/%s", i, d.Result, d.Reason)
		}
		e.clk.Advance(30 * time.Second)
	}
}
