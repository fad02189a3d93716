package auth

import (
	"container/list"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/otpgate/otpgate/store"
)

// Lockout (RFC 4226 §7.3).
//
// Code failures (wrong code, malformed code, bad recovery code) are counted
// per user in the store, across all clients and sessions, so parallel guessing
// from many NASes or States shares one budget. After the threshold-th
// failure the user is locked for base * 2^(failures-threshold), capped at
// max. The counter is not reset by a lock expiring nor by a successful
// login: it only decays, by one for every LockoutMax without a failure (or
// is cleared by an admin unlock). So after the first lock each further wrong
// guess doubles the next lock and an attacker gets one guess per lock, and a
// real user's successful logins between the attacker's guesses do not hand
// the attacker a fresh escalation. Failures are counted inside store.Update
// after re-reading the record, so a burst of concurrent guesses is
// serialised and the ones that arrive while the lock is set are rejected
// without evaluating the code.
//
// Worst case with the defaults (threshold 5, base 30 s, max 4 h, skew 1) for
// an attacker who has the password, or who needs none (otp-only clients):
//
//	attempts 1..5 at t = 0 (the 5th sets a 30 s lock)
//	attempt n (6..14) at t = 30 s * (2^(n-5) - 1); the 14th at 15 330 s sets
//	    the first capped lock (30 s * 2^9 = 15 360 s > 14 400 s = 4 h)
//	then one attempt every 14 400 s (each decays the count by one and adds
//	    one, so the lock stays capped): floor((31 536 000 - 15 330) / 14 400) = 2 188
//	N = 14 + 2 188 = 2 202 attempts in a year (365 d = 31 536 000 s)
//
// Each attempt matches one of 3 codes (steps T-1, T, T+1) out of 10^6, so
// p = 3e-6 and P(success within a year) = 1 - (1 - 3e-6)^2202 ≈ 0.66 %, under
// 1 %, whatever the real user does. (If the lock let `threshold` guesses
// through per window, N would be about 5 * 2 190 ≈ 10 950 and P ≈ 3.2 %; if a
// successful login reset the count, one real login a day would give the
// attacker 18 guesses a day, N ≈ 6 570, P ≈ 1.95 %.)
//
// A reused code (code_reused: it matches a step at or before the last
// accepted one) is refused and not counted. Such an attempt can never
// succeed, so the attempts that can are still only the N counted ones, each
// with p <= 3 / (10^6 - 3): the bound holds. Counting them would only let
// whoever saw one login lock the user out by replaying it.
//
// Password failures must not let a stranger lock the real user out, so they
// are kept per (user, station) with the same backoff (userBackoff): the
// station is the normalised Calling-Station-Id (no source port), each user
// has at most maxStationsPerUser stations of their own and the rest share
// one bucket, a station in backoff refuses even the right password (after
// the same hash as any request), and a correct password forgets its own
// station's failures (not the shared bucket's). One node keeps them in
// memory (stationTable); nodes sharing a database keep them there
// (Options.PasswordBackoff), so spreading guesses over the nodes gains
// nothing.

// decayedFailures is the failure count after one failure is forgiven for
// every full `every` since the last failure.
func decayedFailures(failures int, last, now time.Time, every time.Duration) int {
	if failures <= 0 || every <= 0 || last.IsZero() || !now.After(last) {
		return max(failures, 0)
	}
	return max(failures-int(now.Sub(last)/every), 0)
}

// backoff returns the lock length once failures failures count (the count
// decays, a success does not reset it), or 0 when failures is still under
// the threshold.
func backoff(failures, threshold int, base, max time.Duration) time.Duration {
	if failures < threshold {
		return 0
	}
	shift := failures - threshold
	if shift >= 62 {
		return max
	}
	d := base
	for range shift {
		d *= 2
		if d >= max || d <= 0 {
			return max
		}
	}
	return min(d, max)
}

// pwOutcome is what a password check means for the station backoff.
type pwOutcome int

const (
	pwFailed  pwOutcome = iota // counted
	pwPassed                   // forgets the station's failures
	pwNeutral                  // neither (a correct password of a disabled user)
)

// backoffRules are the password backoff's settings: the lockout options
// and the bounds in options.go.
type backoffRules struct {
	perUser   int // own-station buckets per user (the overflow bucket is extra)
	threshold int
	base, cap time.Duration
	forget    time.Duration
}

func backoffRulesOf(o Options, perUser int) backoffRules {
	return backoffRules{perUser: perUser, threshold: o.LockoutThreshold,
		base: o.LockoutInitial, cap: o.LockoutMax, forget: stationForgetAfter}
}

// stationCount is one bucket of password failures: a station's own or a
// user's overflow bucket.
type stationCount struct {
	failures    int
	last        time.Time // the last failure, or the success that cleared the count
	lockedUntil time.Time
}

// quiet: the bucket has had no failure for r.forget and is out of
// backoff, so it is as good as absent.
func (c *stationCount) quiet(r backoffRules, now time.Time) bool {
	return now.Sub(c.last) >= r.forget && !now.Before(c.lockedUntil)
}

// userBackoff is one user's password backoff, the one implementation of
// its rules: the in-memory stationTable holds one per user, and a shared
// PasswordBackoffStore keeps one per user encoded (sharedBackoff). A user
// has at most perUser stations of their own; failures from any further
// station count in one overflow bucket, so a guesser who invents a new
// Calling-Station-Id for every guess gains at most perUser buckets' worth
// of guesses before backing off like one station. The zero value has no
// failures.
type userBackoff struct {
	own      map[string]*stationCount // by normalised station
	overflow *stationCount            // shared by stations past perUser; nil until used
}

// settle records the outcome of one password check from station
// (normalised) at now. locked is true when the station was in backoff:
// the request is then refused whatever the password was, and nothing is
// recorded (a correct password does not end the backoff, so probing after
// a guess tells nothing). Its callers run it in one step with the read and
// the write of b, so a burst of concurrent guesses cannot all slip past
// the threshold.
func (b *userBackoff) settle(r backoffRules, station string, o pwOutcome, now time.Time) (locked bool) {
	c := b.lookup(r, station, now)
	if c != nil && now.Before(c.lockedUntil) {
		return true
	}
	switch o {
	case pwFailed:
		if c == nil {
			c = b.add(r, station)
		}
		c.failures++
		c.last = now
		if d := backoff(c.failures, r.threshold, r.base, r.cap); d > 0 {
			c.lockedUntil = now.Add(d)
		}
	case pwPassed:
		// The station's failures are forgotten, but it keeps its bucket
		// (whatever a guesser does with the user's other slots). The
		// overflow bucket is shared with whoever rotates stations: the
		// real user's success must not hand them a fresh series.
		if c != nil && c != b.overflow {
			c.failures, c.last, c.lockedUntil = 0, now, time.Time{}
		}
	}
	return false
}

// lookup returns the bucket station's failures count in, or nil when it
// has none yet. Buckets quiet for r.forget (and out of backoff) are
// dropped on the way, freeing their slots.
func (b *userBackoff) lookup(r backoffRules, station string, now time.Time) *stationCount {
	if c, ok := b.own[station]; ok {
		if !c.quiet(r, now) {
			return c
		}
		delete(b.own, station)
	}
	if len(b.own) < r.perUser {
		return nil // a first failure gets the station its own bucket
	}
	for s, c := range b.own {
		if c.quiet(r, now) {
			delete(b.own, s)
		}
	}
	if b.overflow != nil && b.overflow.quiet(r, now) {
		b.overflow = nil
	}
	if len(b.own) < r.perUser {
		return nil
	}
	return b.overflow
}

// add creates the bucket of a station that has none: its own while the
// user has fewer than perUser, else the overflow bucket (lookup returned
// nil, so there is none yet).
func (b *userBackoff) add(r backoffRules, station string) *stationCount {
	c := &stationCount{}
	if len(b.own) < r.perUser {
		if b.own == nil {
			b.own = make(map[string]*stationCount)
		}
		b.own[station] = c
	} else {
		b.overflow = c
	}
	return c
}

// len is the number of buckets b holds.
func (b *userBackoff) len() int {
	n := len(b.own)
	if b.overflow != nil {
		n++
	}
	return n
}

// forgetAt is when every bucket of b is quiet: from then on b is as good
// as empty, and a store may drop it.
func (b *userBackoff) forgetAt(r backoffRules) time.Time {
	var at time.Time
	for _, c := range b.all() {
		at = latest(at, c.last.Add(r.forget), c.lockedUntil)
	}
	return at
}

func (b *userBackoff) all() []*stationCount {
	all := make([]*stationCount, 0, b.len())
	for _, c := range b.own {
		all = append(all, c)
	}
	if b.overflow != nil {
		all = append(all, b.overflow)
	}
	return all
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// stationTable keeps the password backoff of every user in this
// process's memory, bounded: when the table holds more than max buckets
// in all, the least recently touched users are evicted whole.
type stationTable struct {
	mu    sync.Mutex
	max   int // buckets in all
	rules backoffRules
	users map[string]*tableUser
	lru   list.List // front = most recently touched; values *tableUser
	n     int       // buckets of all users
}

// tableUser is one user's backoff in the table.
type tableUser struct {
	userBackoff
	name string
	el   *list.Element // in lru
}

// newStationTable keeps at most maxEntries buckets and perUser own
// stations per user, locking them out as o's lockout options say.
func newStationTable(o Options, maxEntries, perUser int) *stationTable {
	return &stationTable{max: maxEntries, rules: backoffRulesOf(o, perUser), users: make(map[string]*tableUser)}
}

// settle is userBackoff.settle for user, under the table's lock.
func (t *stationTable) settle(user, station string, o pwOutcome, now time.Time) (locked bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tu := t.users[user]
	if tu == nil {
		if o != pwFailed {
			return false // nothing to refuse, nothing to record
		}
		tu = &tableUser{name: user}
		tu.el = t.lru.PushFront(tu)
		t.users[user] = tu
	}
	before := tu.len()
	locked = tu.settle(t.rules, station, o, now)
	t.n += tu.len() - before
	switch {
	case tu.len() == 0:
		t.removeLocked(tu)
		return locked
	case !locked && o != pwNeutral:
		t.lru.MoveToFront(tu.el)
	}
	for t.n > t.max {
		back := t.lru.Back().Value.(*tableUser)
		if back == tu {
			break // one user's buckets are bounded by perUser
		}
		t.removeLocked(back)
	}
	return locked
}

func (t *stationTable) removeLocked(tu *tableUser) {
	t.lru.Remove(tu.el)
	delete(t.users, tu.name)
	t.n -= tu.len()
}

// len is the number of buckets in the table.
func (t *stationTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// stationOf is the station a request's password failures count against:
// its Calling-Station-Id (or source address) normalised, else its client.
func stationOf(r Request) string {
	if s := normalizeStation(r.Station); s != "" {
		return s
	}
	return "client:" + r.Client
}

// normalizeStation maps the spellings of one station to one key, so that a
// part that changes per connection does not make a new station:
//
//   - strongSwan's "10.99.0.2[58214]" and "192.0.2.1:58214",
//     "[2001:db8::1]:58214" lose the source port (a bare IPv6 address keeps
//     all its groups: "2001:db8::1:5" has no port);
//   - addresses are written canonically, IPv4-mapped IPv6 as IPv4;
//   - MAC addresses ("00-10-A4-23-19-C0", "00:10:a4:23:19:c0",
//     "0010.a423.19c0", "0010A42319C0") become "00-10-a4-23-19-c0";
//   - anything else (a phone number, a host name) is only trimmed and
//     lower-cased.
func normalizeStation(s string) string {
	s = strings.TrimSpace(s)
	if n := len(s); n > 2 && s[n-1] == ']' {
		if i := strings.LastIndexByte(s, '['); i > 0 && isASCIIDigits(s[i+1:n-1]) {
			s = s[:i]
		}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().String()
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap().String()
	}
	if mac, ok := normalizeMAC(s); ok {
		return mac
	}
	return strings.ToLower(s)
}

// normalizeMAC reads a 48-bit MAC address in the usual spellings.
func normalizeMAC(s string) (string, bool) {
	if len(s) == 12 {
		if _, err := hex.DecodeString(s); err != nil {
			return "", false
		}
		s = s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12]
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", false
	}
	return strings.ReplaceAll(hw.String(), ":", "-"), true
}

func isASCIIDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// stateLen is the size of a challenge State: 128 bits from crypto/rand.
const stateLen = 16

// challengeTable holds outstanding challenge States. Entries are kept in
// issue order (= expiry order, the TTL is fixed), so expired ones are swept
// from the front. It is bounded three ways (store.StateLimits, the same
// rules a StateStore keeps), so that nobody can push out someone else's
// pending State: a user with perUser pending States loses their own oldest
// to a new one, a client with perClient loses its own oldest, and when the
// whole table is full the client holding the most States loses its oldest.
type challengeTable struct {
	mu        sync.Mutex
	ttl       time.Duration
	max       int
	perClient int
	perUser   int
	m         map[string]*pendingState
	q         list.List // all, front = oldest; values *pendingState
	byClient  map[string]*list.List
	byUser    map[string]*list.List
}

type pendingState struct {
	key          string
	user, client string
	info         stateInfo
	expires      time.Time
	all          *list.Element // in q
	ofClient     *list.Element // in byClient[client]
	ofUser       *list.Element // in byUser[user]
}

func newChallengeTable(ttl time.Duration, limits store.StateLimits) *challengeTable {
	return &challengeTable{
		ttl: ttl, max: limits.Total, perClient: limits.PerClient, perUser: limits.PerUser,
		m:        make(map[string]*pendingState),
		byClient: make(map[string]*list.List),
		byUser:   make(map[string]*list.List),
	}
}

// stateInfo is what a State asks for beyond a login code: the steps of a
// first-login enrollment. The zero value is a login code challenge.
type stateInfo struct {
	step  enrollStep
	tries int    // wrong enrollment codes so far
	link  string // the enrollment link the offer showed; "" when it showed the key
}

// issue creates a State bound to user and client that carries info, valid
// for the TTL.
func (c *challengeTable) issue(user, client string, info stateInfo, now time.Time) []byte {
	st := newState()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
	if l := c.byUser[user]; l != nil && l.Len() >= c.perUser {
		c.removeLocked(l.Front().Value.(*pendingState))
	}
	if l := c.byClient[client]; l != nil && l.Len() >= c.perClient {
		c.removeLocked(l.Front().Value.(*pendingState))
	}
	for c.q.Len() >= c.max && c.q.Len() > 0 {
		c.removeLocked(c.biggestClientLocked().Front().Value.(*pendingState))
	}
	p := &pendingState{key: string(st), user: user, client: client, info: info, expires: now.Add(c.ttl)}
	p.all = c.q.PushBack(p)
	p.ofClient = listOf(c.byClient, client).PushBack(p)
	p.ofUser = listOf(c.byUser, user).PushBack(p)
	c.m[p.key] = p
	return st
}

func listOf(m map[string]*list.List, k string) *list.List {
	l := m[k]
	if l == nil {
		l = list.New()
		m[k] = l
	}
	return l
}

// biggestClientLocked returns the pending States of the client that holds
// the most (the table is not empty).
func (c *challengeTable) biggestClientLocked() *list.List {
	var big *list.List
	for _, l := range c.byClient {
		if big == nil || l.Len() > big.Len() {
			big = l
		}
	}
	return big
}

// take removes state from the table and returns what it was bound to and
// what it carries; ok is false for an unknown, already used or expired
// State.
func (c *challengeTable) take(state []byte, now time.Time) (user, client string, info stateInfo, ok bool) {
	if len(state) != stateLen {
		return "", "", stateInfo{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
	p, found := c.m[string(state)]
	if !found {
		return "", "", stateInfo{}, false
	}
	c.removeLocked(p)
	if !now.Before(p.expires) {
		return "", "", stateInfo{}, false
	}
	return p.user, p.client, p.info, true
}

func (c *challengeTable) sweepLocked(now time.Time) {
	for el := c.q.Front(); el != nil; el = c.q.Front() {
		p := el.Value.(*pendingState)
		if now.Before(p.expires) {
			return
		}
		c.removeLocked(p)
	}
}

func (c *challengeTable) removeLocked(p *pendingState) {
	c.q.Remove(p.all)
	removeFrom(c.byClient, p.client, p.ofClient)
	removeFrom(c.byUser, p.user, p.ofUser)
	delete(c.m, p.key)
}

func removeFrom(m map[string]*list.List, k string, el *list.Element) {
	l := m[k]
	l.Remove(el)
	if l.Len() == 0 {
		delete(m, k)
	}
}

func (c *challengeTable) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
