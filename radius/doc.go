// Package radius is otpgate's RADIUS/UDP transport, built on layeh.com/radius
// for packet encoding but with its own read loop.
//
// For every datagram the server looks the client (NAS) up by source address
// in a CIDR table (longest prefix wins), parses the packet with that client's
// shared secret and then runs a fixed chain:
//
//   - Message-Authenticator: verified when present (exactly one, 18 octets,
//     HMAC-MD5, constant-time compare); a missing one is a drop when the
//     client requires it (Client.RequireMessageAuthenticator), and
//     Proxy-State without it is a drop when Client.LimitProxyState is set
//     (BlastRADIUS, CVE-2024-3596). Invalid packets are dropped before they
//     touch any state.
//   - Reply cache (RFC 5080 §2.2.2): keyed by receiving socket, source
//     address and port, and Identifier. A retransmission with the same Request
//     Authenticator gets the cached response bytes and is never evaluated
//     again, so a lost Access-Accept cannot turn into a TOTP replay reject; a
//     duplicate still being evaluated is dropped silently.
//   - A bounded queue feeding a fixed pool of workers. A full queue drops the
//     request (the NAS retransmits), and so does a client's request when it
//     already holds half the queue; a panic is recovered, logged and counted.
//   - The Authenticator decides; the server answers Access-Accept,
//     Access-Reject or Access-Challenge with Message-Authenticator as the
//     first attribute and every Proxy-State copied back in order. Rejects are
//     uniform (no reason is sent) and delayed by Options.RejectDelay without
//     holding a worker.
//
// A request that uses CHAP, MS-CHAP or EAP, which never reveal the password
// and code, is rejected with the reason unsupported_method (and EAP-Failure
// for EAP) and a rate-limited warning to use PAP.
//
// Status-Server (RFC 5997) with a valid Message-Authenticator is answered
// with an Access-Accept. Other packet codes are dropped.
//
// ServeAccounting serves an accounting socket (RFC 2866): an
// Accounting-Request with a valid Request Authenticator (and a valid
// Message-Authenticator, if it has one) is audited and answered with an
// Accounting-Response; it never reaches the Authenticator or the store.
//
// Every decision is written as one line to the audit logger (user, client,
// station, mode, result, reason, duration; never a password, code, State or
// secret). A request dropped under overload gets no answer and no line (the
// NAS retransmits); a rate-limited warning says it happens. The Server is a
// prometheus.Collector of these metrics; the daemon registers it in its own
// registry, served on /metrics:
//
//	otpgate_radius_requests_total{code}         answered requests by response code (accept, reject, challenge, status_server)
//	otpgate_radius_rejects_total{reason}        Access-Rejects by auth.Reason
//	otpgate_radius_drops_total{reason}          silently discarded datagrams
//	otpgate_radius_reply_cache_hits_total       retransmissions answered from the reply cache
//	otpgate_radius_panics_total                 recovered panics
//	otpgate_radius_request_duration_seconds     time from receipt to decision (histogram, reject delay excluded)
//	otpgate_radius_reply_cache_entries          entries in the reply cache (gauge)
//	otpgate_radius_queue_length                 requests waiting for a worker (gauge)
package radius
