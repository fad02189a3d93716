// Package totp computes and checks RFC 6238 time-based one-time codes: the
// one implementation that logins (auth), enrollment (enroll, internal/admin)
// and the load generator (bench/loadgen) share.
//
// A token's Params say how its codes are made: HMAC-SHA1, -SHA256 or
// -SHA512, 6 or 8 digits, a new code every period (30 s). The code for a
// time step (Unix time / period, T0 = 0) is the RFC 4226 HOTP value of the
// step. Match compares a typed code with every step of a window around now
// in constant time and returns the step that matched, so that the caller
// can refuse a step it has accepted before (RFC 6238 §5.2).
//
// Secrets and codes are credentials: nothing here logs them or puts them in
// an error.
package totp
