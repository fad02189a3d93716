package auth

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// gateWaiters starts one acquire per client name, in order, each after the
// previous one is waiting, and returns the order in which they get a worker
// (each releases it at once, as verify would).
func gateWaiters(t *testing.T, g *hashGate, clients []string) (order func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	var wg sync.WaitGroup
	for _, c := range clients {
		waiting := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !g.acquire(context.Background(), c, func() { close(waiting) }) {
				t.Errorf("%s: refused", c)
				return
			}
			mu.Lock()
			got = append(got, c)
			mu.Unlock()
			<-g.workers
		}()
		select {
		case <-waiting:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not wait", c)
		}
	}
	return func() []string {
		wg.Wait()
		return got
	}
}

// TestHashGateRoundRobin: with the one worker busy, a client that queued
// many requests first gets a worker only every other time once a second
// client waits too: the second client's request is served second, not
// after the whole backlog.
func TestHashGateRoundRobin(t *testing.T) {
	g := newHashGate(make(chan struct{}, 1), 10)
	g.workers <- struct{}{} // the worker is busy
	order := gateWaiters(t, g, []string{"flood", "flood", "flood", "flood", "office", "flood"})
	<-g.workers
	got := order()
	want := []string{"flood", "flood", "office", "flood", "flood", "flood"}
	if !slices.Equal(got, want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	if g.turn || len(g.ring) != 0 || len(g.queues) != 0 || len(g.waiting) != 0 {
		t.Fatalf("gate not idle: turn %v ring %v queues %d waiting %v", g.turn, g.ring, len(g.queues), g.waiting)
	}
}

// TestHashGatePerClientBound: a client with its share waiting is refused at
// once; another client still waits for a worker.
func TestHashGatePerClientBound(t *testing.T) {
	g := newHashGate(make(chan struct{}, 1), 2)
	g.workers <- struct{}{}
	order := gateWaiters(t, g, []string{"flood", "flood"})
	start := time.Now()
	if g.acquire(context.Background(), "flood", nil) {
		t.Fatal("a third waiting request of one client was let in; share is 2")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusal took %v", d)
	}
	office := gateWaiters(t, g, []string{"office"})
	<-g.workers
	if got := append(order(), office()...); len(got) != 3 {
		t.Fatalf("served %v", got)
	}
}

// TestHashGateCancel: a request that gives up while queued leaves the
// queue; one that gives up while holding the turn passes it on. Either way
// the others are served and the counts return to zero.
func TestHashGateCancel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel int // index of the waiter whose context ends
	}{
		{"turn holder", 0},
		{"queued", 1},
		{"last queued", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newHashGate(make(chan struct{}, 1), 10)
			g.workers <- struct{}{}
			clients := []string{"a", "b", "a"}
			ctx, cancel := context.WithCancel(context.Background())
			results := make([]chan bool, len(clients))
			for i, c := range clients {
				results[i] = make(chan bool, 1)
				waiting := make(chan struct{})
				wctx := context.Background()
				if i == tc.cancel {
					wctx = ctx
				}
				go func() {
					ok := g.acquire(wctx, c, func() { close(waiting) })
					if ok {
						<-g.workers
					}
					results[i] <- ok
				}()
				<-waiting
			}
			cancel()
			if ok := <-results[tc.cancel]; ok {
				t.Fatal("canceled request got a worker")
			}
			<-g.workers
			for i := range clients {
				if i == tc.cancel {
					continue
				}
				select {
				case ok := <-results[i]:
					if !ok {
						t.Fatalf("waiter %d refused", i)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("waiter %d never served", i)
				}
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.turn || len(g.ring) != 0 || len(g.queues) != 0 || len(g.waiting) != 0 {
				t.Fatalf("gate not idle: turn %v ring %v queues %d waiting %v", g.turn, g.ring, len(g.queues), g.waiting)
			}
		})
	}
}
