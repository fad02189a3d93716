// Package loadgen is a RADIUS load generator for otpgated and, for
// comparison, any RADIUS server that checks PAP passwords and TOTP codes
// (FreeRADIUS with rlm_totp). `otpgate bench` calls Main.
//
// It reads users in the CSV format of `otpgate import`
// (name,password,totp_secret,groups), computes each code from the user's
// secret with package totp (its defaults: SHA-1, 6 digits, 30 s; the CSV
// carries no other parameters) and never sends a code twice: within one
// time step each user is used for at most one login, taken from a cursor
// all workers share. When every user has been used in the current step
// the workers wait for the next one; that wait is reported as the
// user-count limit, and throughput is also given over the time the workers
// were not waiting. So every Accept counted is a real first use of a code,
// never a replay a correct server would have to reject.
//
// Every request carries a Message-Authenticator (HMAC-MD5, RFC 3579 §3.2) as
// its first attribute; every response must carry a valid Response
// Authenticator, and its Message-Authenticator is verified when present.
// Each worker owns one UDP socket and has one request in flight.
package loadgen
