package radius

import (
	"net/netip"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func key(port uint16, id byte) cacheKey {
	return cacheKey{
		local:  netip.MustParseAddrPort("127.0.0.1:1812"),
		remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		id:     id,
	}
}

func TestReplyCache(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newReplyCache(10*time.Second, 100, clk.now)
	a1, a2 := [16]byte{1}, [16]byte{2}

	act, _, e := c.begin(key(1000, 7), a1)
	if act != cacheNew {
		t.Fatalf("first: %v", act)
	}
	if act, _, _ := c.begin(key(1000, 7), a1); act != cacheInFlight {
		t.Fatalf("duplicate in flight: %v", act)
	}
	// In flight longer than the TTL: still suppresses duplicates.
	clk.advance(25 * time.Second)
	c.begin(key(1001, 1), a1) // triggers expiry sweep
	if act, _, _ := c.begin(key(1000, 7), a1); act != cacheInFlight {
		t.Fatalf("long in-flight duplicate: %v", act)
	}
	c.finish(e, []byte("resp"))
	act, b, _ := c.begin(key(1000, 7), a1)
	if act != cacheResend || string(b) != "resp" {
		t.Fatalf("answered duplicate: %v %q", act, b)
	}
	clk.advance(9 * time.Second)
	if act, _, _ := c.begin(key(1000, 7), a1); act != cacheResend {
		t.Fatalf("before expiry: %v", act)
	}
	clk.advance(2 * time.Second)
	if act, _, _ := c.begin(key(1000, 7), a1); act != cacheNew {
		t.Fatalf("after expiry: %v", act)
	}

	// A different Request Authenticator is a new request and replaces the
	// entry; the old one's late answer is not stored.
	_, _, old := c.begin(key(2000, 1), a1)
	act, _, fresh := c.begin(key(2000, 1), a2)
	if act != cacheNew {
		t.Fatalf("new authenticator: %v", act)
	}
	c.finish(old, []byte("stale"))
	if act, _, _ := c.begin(key(2000, 1), a2); act != cacheInFlight {
		t.Fatalf("replaced entry: %v", act)
	}
	c.finish(fresh, []byte("fresh"))
	if _, b, _ := c.begin(key(2000, 1), a2); string(b) != "fresh" {
		t.Fatalf("got %q", b)
	}
	if act, _, _ := c.begin(key(2000, 1), a1); act != cacheNew {
		t.Fatalf("old authenticator again: %v", act)
	}

	// abort forgets an in-flight entry.
	_, _, e = c.begin(key(3000, 1), a1)
	c.abort(e)
	if act, _, _ := c.begin(key(3000, 1), a1); act != cacheNew {
		t.Fatalf("after abort: %v", act)
	}
}

func TestReplyCacheBound(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newReplyCache(30*time.Second, 100, clk.now)
	var first *cacheEntry
	for i := range 1000 {
		_, _, e := c.begin(key(uint16(1000+i), byte(i)), [16]byte{byte(i)})
		if i == 0 {
			first = e
		}
		c.finish(e, []byte("r"))
		if n := c.len(); n > 100 {
			t.Fatalf("%d entries, bound 100", n)
		}
	}
	if c.order.Len() != c.len() {
		t.Fatalf("list %d != map %d", c.order.Len(), c.len())
	}
	// The oldest was evicted; finishing it again is harmless.
	c.finish(first, []byte("late"))
	act, _, e := c.begin(key(1000, 0), [16]byte{0})
	if act != cacheNew {
		t.Fatalf("oldest entry not evicted: %v", act)
	}
	c.finish(e, []byte("r"))
	// Expiry empties it.
	clk.advance(31 * time.Second)
	c.begin(key(1, 1), [16]byte{})
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries after expiry, want 1", n)
	}
}

// TestReplyCacheEvictsAnsweredFirst: when the cache is full, answered
// entries go before in-flight ones. Evicting an in-flight marker would let a
// retransmission of a request still being evaluated be evaluated a second
// time (a TOTP replay Reject for the real user, a doubled failure count).
func TestReplyCacheEvictsAnsweredFirst(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := newReplyCache(30*time.Second, 3, clk.now)
	_, _, slow := c.begin(key(1000, 1), [16]byte{1}) // oldest, still in flight
	for i := range 10 {
		clk.advance(time.Millisecond)
		_, _, e := c.begin(key(uint16(2000+i), 1), [16]byte{1})
		c.finish(e, []byte("r"))
		if n := c.len(); n > 3 {
			t.Fatalf("%d entries, bound 3", n)
		}
	}
	if act, _, _ := c.begin(key(1000, 1), [16]byte{1}); act != cacheInFlight {
		t.Fatalf("retransmission of an in-flight request: %v, want cacheInFlight (the marker was evicted)", act)
	}
	c.finish(slow, []byte("slow"))
	if act, b, _ := c.begin(key(1000, 1), [16]byte{1}); act != cacheResend || string(b) != "slow" {
		t.Fatalf("after the answer: %v %q, want the cached reply", act, b)
	}

	// Only in-flight entries: the bound still holds (the oldest goes).
	c = newReplyCache(30*time.Second, 2, clk.now)
	for i := range 5 {
		c.begin(key(uint16(3000+i), 1), [16]byte{1})
		if n := c.len(); n > 2 {
			t.Fatalf("%d in-flight entries, bound 2", n)
		}
	}
}
