package auth

import (
	"context"
	"slices"
	"sync"
)

// hashGate shares the password-hash workers fairly between clients (NASes).
// Requests that find every worker busy wait in one queue per client, and a
// freed worker goes to the clients' queues in turn (round-robin), so a
// client that floods the password path waits behind its own requests, not
// in front of everyone else's. One client may have at most perClient
// requests waiting; more are refused at once, which also leaves admission
// tokens (and the transport's handlers, which wait here) to other clients.
//
// The gate hands out tokens of the workers channel, which verify releases.
// One waiter at a time holds the turn and blocks on the channel; once it
// has a worker it passes the turn to the head of the next client's queue.
type hashGate struct {
	workers   chan struct{}
	perClient int

	mu      sync.Mutex
	turn    bool                     // a waiter holds the turn
	queues  map[string][]*hashWaiter // waiting for the turn, per client
	ring    []string                 // clients with a non-empty queue, served in this order
	next    int                      // index in ring of the client served next
	waiting map[string]int           // per client: queued, plus the turn holder
}

type hashWaiter struct {
	client  string
	turn    chan struct{} // closed when the waiter is given the turn
	granted bool          // under hashGate.mu: the turn was given
}

func newHashGate(workers chan struct{}, perClient int) *hashGate {
	return &hashGate{
		workers:   workers,
		perClient: max(1, perClient),
		queues:    make(map[string][]*hashWaiter),
		waiting:   make(map[string]int),
	}
}

// acquire takes a worker for a request of client. It returns false, holding
// nothing, when client already has perClient requests waiting or ctx ends
// first. onWait (tests; may be nil) runs when the request starts waiting.
func (g *hashGate) acquire(ctx context.Context, client string, onWait func()) bool {
	g.mu.Lock()
	if !g.turn {
		select {
		case g.workers <- struct{}{}:
			g.mu.Unlock()
			return true
		default:
		}
	}
	if g.waiting[client] >= g.perClient {
		g.mu.Unlock()
		return false
	}
	g.waiting[client]++
	if !g.turn {
		g.turn = true
		g.mu.Unlock()
		if onWait != nil {
			onWait()
		}
		return g.holdTurn(ctx, client)
	}
	w := &hashWaiter{client: client, turn: make(chan struct{})}
	if len(g.queues[client]) == 0 {
		g.ring = append(g.ring, client)
	}
	g.queues[client] = append(g.queues[client], w)
	g.mu.Unlock()
	if onWait != nil {
		onWait()
	}
	select {
	case <-w.turn:
		return g.holdTurn(ctx, client)
	case <-ctx.Done():
	}
	g.mu.Lock()
	if w.granted { // the turn came as ctx ended: pass it on
		g.mu.Unlock()
		g.passTurn(client)
		return false
	}
	g.removeLocked(w)
	g.leaveLocked(client)
	g.mu.Unlock()
	return false
}

// holdTurn waits for a worker holding the turn, then passes the turn on.
func (g *hashGate) holdTurn(ctx context.Context, client string) bool {
	got := false
	select {
	case g.workers <- struct{}{}:
		got = true
	case <-ctx.Done():
	}
	g.passTurn(client)
	return got
}

// passTurn ends the wait of client's turn holder and gives the turn to the
// head of the next client's queue.
func (g *hashGate) passTurn(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLocked(client)
	if len(g.ring) == 0 {
		g.turn = false
		return
	}
	if g.next >= len(g.ring) {
		g.next = 0
	}
	c := g.ring[g.next]
	q := g.queues[c]
	w := q[0]
	if len(q) == 1 {
		delete(g.queues, c)
		g.ring = slices.Delete(g.ring, g.next, g.next+1) // next now names the following client
	} else {
		q[0] = nil
		g.queues[c] = q[1:]
		g.next++
	}
	w.granted = true
	close(w.turn)
}

// removeLocked takes a waiter that gave up out of its client's queue.
func (g *hashGate) removeLocked(w *hashWaiter) {
	q := g.queues[w.client]
	i := slices.Index(q, w)
	if i < 0 {
		return
	}
	if len(q) > 1 {
		g.queues[w.client] = slices.Delete(q, i, i+1)
		return
	}
	delete(g.queues, w.client)
	r := slices.Index(g.ring, w.client)
	g.ring = slices.Delete(g.ring, r, r+1)
	if r < g.next {
		g.next--
	}
}

// leaveLocked counts one request of client as no longer waiting.
func (g *hashGate) leaveLocked(client string) {
	if g.waiting[client] <= 1 {
		delete(g.waiting, client)
		return
	}
	g.waiting[client]--
}

// clientKey carries the requesting client's name in the context, from
// admission to the hash worker.
type clientKey struct{}

func withClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

func clientOf(ctx context.Context) string {
	c, _ := ctx.Value(clientKey{}).(string)
	return c
}

// hashQueuePerClient is how many requests one client may have waiting for a
// hash worker: half the queue, so a flooding client leaves the other half
// (and its admission tokens) to everyone else.
func hashQueuePerClient(queue int) int { return max(1, queue/2) }
