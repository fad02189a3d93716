package auth

import (
	"container/list"
	"crypto/rand"
	"fmt"
	"sync"
	"time"
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
// are kept in memory per (user, station) with the same backoff (stationTable).

// decayedFailures is the failure count after one failure is forgiven for
// every full `every` since the last failure.
func decayedFailures(failures int, last, now time.Time, every time.Duration) int {
	if failures <= 0 || every <= 0 || last.IsZero() || !now.After(last) {
		return max(failures, 0)
	}
	return max(failures-int(now.Sub(last)/every), 0)
}

// backoff returns the lock length after the failures-th consecutive failure,
// or 0 when failures is still under the threshold.
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

// stationTable tracks password failures per (user, station) in memory,
// bounded: the least recently touched entry is evicted when full.
type stationTable struct {
	mu        sync.Mutex
	max       int
	threshold int
	base, cap time.Duration
	forget    time.Duration
	m         map[string]*list.Element
	lru       list.List // front = most recently touched; values *stationEntry
}

type stationEntry struct {
	key         string
	failures    int
	last        time.Time
	lockedUntil time.Time
}

// newStationTable keeps at most maxEntries (user, station) pairs, locking
// them out as o's lockout options say.
func newStationTable(o Options, maxEntries int) *stationTable {
	return &stationTable{
		max: maxEntries, threshold: o.LockoutThreshold,
		base: o.LockoutInitial, cap: o.LockoutMax, forget: stationForgetAfter,
		m: make(map[string]*list.Element),
	}
}

func stationKey(user, client, station string) string {
	if station == "" {
		station = "client:" + client
	}
	return user + "\x00" + station
}

// locked reports whether key is in backoff at now.
func (t *stationTable) locked(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	el, ok := t.m[key]
	if !ok {
		return false
	}
	e := el.Value.(*stationEntry)
	if now.Before(e.lockedUntil) {
		return true
	}
	if now.Sub(e.last) >= t.forget { // not locked: returned above
		t.lru.Remove(el)
		delete(t.m, key)
	}
	return false
}

// fail records a password failure for key at now.
func (t *stationTable) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var e *stationEntry
	if el, ok := t.m[key]; ok {
		e = el.Value.(*stationEntry)
		t.lru.MoveToFront(el)
		if now.Sub(e.last) >= t.forget && !now.Before(e.lockedUntil) {
			e.failures = 0
		}
	} else {
		for t.lru.Len() >= t.max && t.lru.Len() > 0 {
			old := t.lru.Back()
			t.lru.Remove(old)
			delete(t.m, old.Value.(*stationEntry).key)
		}
		e = &stationEntry{key: key}
		t.m[key] = t.lru.PushFront(e)
	}
	e.failures++
	e.last = now
	if d := backoff(e.failures, t.threshold, t.base, t.cap); d > 0 {
		e.lockedUntil = now.Add(d)
	}
}

// succeed forgets key's failures after a correct password.
func (t *stationTable) succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.m[key]; ok {
		t.lru.Remove(el)
		delete(t.m, key)
	}
}

func (t *stationTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// stateLen is the size of a challenge State: 128 bits from crypto/rand.
const stateLen = 16

// challengeTable holds outstanding challenge States. Entries are kept in
// issue order (= expiry order, the TTL is fixed), so expired ones are swept
// from the front. It is bounded three ways, so that nobody can push out
// someone else's pending State: a user with perUser pending States loses
// their own oldest to a new one, a client with perClient loses its own
// oldest, and when the whole table is full the client holding the most
// States loses its oldest.
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
	expires      time.Time
	all          *list.Element // in q
	ofClient     *list.Element // in byClient[client]
	ofUser       *list.Element // in byUser[user]
}

func newChallengeTable(ttl time.Duration, maxStates, perClient, perUser int) *challengeTable {
	return &challengeTable{
		ttl: ttl, max: maxStates, perClient: perClient, perUser: perUser,
		m:        make(map[string]*pendingState),
		byClient: make(map[string]*list.List),
		byUser:   make(map[string]*list.List),
	}
}

// issue creates a State bound to user and client, valid for the TTL.
func (c *challengeTable) issue(user, client string, now time.Time) ([]byte, error) {
	st := make([]byte, stateLen)
	if _, err := rand.Read(st); err != nil {
		return nil, fmt.Errorf("auth: state: %w", err)
	}
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
	p := &pendingState{key: string(st), user: user, client: client, expires: now.Add(c.ttl)}
	p.all = c.q.PushBack(p)
	p.ofClient = listOf(c.byClient, client).PushBack(p)
	p.ofUser = listOf(c.byUser, user).PushBack(p)
	c.m[p.key] = p
	return st, nil
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

// take removes state from the table and returns what it was bound to; ok is
// false for an unknown, already used or expired State.
func (c *challengeTable) take(state []byte, now time.Time) (user, client string, ok bool) {
	if len(state) != stateLen {
		return "", "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
	p, found := c.m[string(state)]
	if !found {
		return "", "", false
	}
	c.removeLocked(p)
	if !now.Before(p.expires) {
		return "", "", false
	}
	return p.user, p.client, true
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
