package radius

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// cacheKey identifies a request for duplicate detection (RFC 5080 §2.2.2):
// receiving socket, source address and port, and Identifier.
type cacheKey struct {
	local  netip.AddrPort
	remote netip.AddrPort
	id     byte
}

// cacheEntry is one request, in flight until resp is set.
type cacheEntry struct {
	key     cacheKey
	auth    [16]byte // Request Authenticator
	resp    []byte   // encoded response; nil while in flight
	expires time.Time
	elem    *list.Element // in replyCache.inflight while resp is nil, else in order
}

// cacheAction says what the read loop does with a request.
type cacheAction int

const (
	cacheNew      cacheAction = iota // evaluate it; the entry is now in flight
	cacheInFlight                    // a duplicate of a request being evaluated: drop
	cacheResend                      // a duplicate of an answered request: resend the bytes
)

// replyCache holds in-flight markers and encoded responses, bounded in time
// (ttl after the answer) and in size. When full, the oldest answered entry is
// evicted first; an in-flight marker goes only when every entry is in
// flight, since evicting one lets a retransmission be evaluated twice.
type replyCache struct {
	mu       sync.Mutex
	ttl      time.Duration
	max      int
	m        map[cacheKey]*cacheEntry
	order    *list.List // answered entries; front = oldest expiry
	inflight *list.List // entries without a response; front = oldest
	now      func() time.Time
}

func newReplyCache(ttl time.Duration, max int, now func() time.Time) *replyCache {
	c := &replyCache{m: make(map[cacheKey]*cacheEntry), order: list.New(), inflight: list.New(), now: now}
	c.setLimits(ttl, max)
	return c
}

// setLimits changes TTL and size (New and Reload checked them).
func (c *replyCache) setLimits(ttl time.Duration, max int) {
	c.mu.Lock()
	c.ttl, c.max = ttl, max
	c.mu.Unlock()
}

// begin looks a request up. For cacheNew it returns the new in-flight entry,
// for cacheResend the cached response bytes (which the caller must not
// modify). A different Request Authenticator under the same key is a new
// request and replaces the old entry.
func (c *replyCache) begin(key cacheKey, auth [16]byte) (cacheAction, []byte, *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expireLocked(now)
	if e, ok := c.m[key]; ok {
		if e.auth == auth {
			if e.resp == nil {
				return cacheInFlight, nil, nil
			}
			if now.Before(e.expires) {
				return cacheResend, e.resp, nil
			}
		}
		c.removeLocked(e)
	}
	e := &cacheEntry{key: key, auth: auth, expires: now.Add(c.ttl)}
	e.elem = c.inflight.PushBack(e)
	c.m[key] = e
	for len(c.m) > c.max {
		victim := c.order.Front()
		if victim == nil {
			victim = c.inflight.Front()
		}
		c.removeLocked(victim.Value.(*cacheEntry))
	}
	return cacheNew, nil, e
}

// finish stores the response of an in-flight entry; it is kept for ttl. An
// entry that was replaced or evicted meanwhile is left alone.
func (c *replyCache) finish(e *cacheEntry, resp []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e.key] != e || e.resp != nil {
		return
	}
	if resp == nil { // nothing to resend: forget it, as abort does
		c.removeLocked(e)
		return
	}
	c.inflight.Remove(e.elem)
	e.resp = resp
	e.expires = c.now().Add(c.ttl)
	e.elem = c.order.PushBack(e)
}

// abort forgets an in-flight entry so a retransmission is evaluated.
func (c *replyCache) abort(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e.key] == e {
		c.removeLocked(e)
	}
}

// len returns the number of entries.
func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// expireLocked drops answered entries past their expiry from the front.
// In-flight entries do not expire: they keep suppressing duplicates until
// they are answered or aborted (every accepted job ends in finish or abort).
func (c *replyCache) expireLocked(now time.Time) {
	for f := c.order.Front(); f != nil; f = c.order.Front() {
		e := f.Value.(*cacheEntry)
		if now.Before(e.expires) {
			return
		}
		c.removeLocked(e)
	}
}

func (c *replyCache) removeLocked(e *cacheEntry) {
	if e.resp == nil {
		c.inflight.Remove(e.elem)
	} else {
		c.order.Remove(e.elem)
	}
	delete(c.m, e.key)
}
