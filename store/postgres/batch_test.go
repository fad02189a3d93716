package postgres

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"github.com/otpgate/otpgate/store"
)

// TestGatheredStatements serves gathered reads and writes by hand, with
// what concurrent logins can put in one statement: a name twice, a name
// that is not there, a revision that is no longer current.
func TestGatheredStatements(t *testing.T) {
	pg := testtool.StartPostgres(t)
	ctx := context.Background()
	db, err := Open(ctx, pg.NewDB(), Options{KeyFile: filepath.Join(t.TempDir(), "seed.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"alice", "bob"} {
		if err := db.Create(ctx, store.User{Name: name, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	req := func(name string) *rowReq { return &rowReq{ctx: ctx, name: name, done: make(chan struct{})} }

	reads := []*rowReq{req("alice"), req("ghost"), req("alice"), req("bob")}
	db.readRows(reads)
	for _, r := range reads {
		<-r.done
	}
	if !errors.Is(reads[1].err, store.ErrUserNotFound) {
		t.Fatalf("ghost: %v, want ErrUserNotFound", reads[1].err)
	}
	for _, i := range []int{0, 2, 3} {
		if reads[i].err != nil || len(reads[i].rec) == 0 {
			t.Fatalf("read %d (%s): %v, %d bytes", i, reads[i].name, reads[i].err, len(reads[i].rec))
		}
	}
	if reads[0].rev != reads[2].rev || string(reads[0].rec) != string(reads[2].rec) {
		t.Fatal("two reads of alice in one statement differ")
	}

	encode := func(name string, failures int) []byte {
		rec, err := db.codec.Encode(&store.User{Name: name, CodeFailures: failures})
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	w1, w2, stale, w3 := req("alice"), req("alice"), req("bob"), req("bob")
	w1.rec, w1.rev = encode("alice", 1), reads[0].rev
	w2.rec, w2.rev = encode("alice", 2), reads[0].rev
	stale.rec, stale.rev = encode("bob", 9), reads[3].rev-1
	w3.rec, w3.rev = encode("bob", 3), reads[3].rev
	db.writeRows([]*rowReq{w1, w2, stale, w3})
	for i, r := range []*rowReq{w1, w2, stale, w3} {
		<-r.done
		if r.err != nil {
			t.Fatalf("write %d: %v", i, r.err)
		}
	}
	// Only the first write of a name goes out: the second alice and the
	// second bob decide again on a fresh read (their callers' next round).
	if !w1.written || w2.written || stale.written || w3.written {
		t.Fatalf("written: first alice %v, second alice %v, stale bob %v, second bob %v; want true false false false",
			w1.written, w2.written, stale.written, w3.written)
	}
	for name, want := range map[string]int{"alice": 1, "bob": 0} {
		if u, err := db.Get(ctx, name); err != nil || u.CodeFailures != want {
			t.Fatalf("%s after the gathered write: %d failures (%v), want %d", name, u.CodeFailures, err, want)
		}
	}

	// A write whose caller has left is not sent: its login gets no reply.
	fresh := req("bob")
	db.readRows([]*rowReq{fresh})
	<-fresh.done
	left, cancel := context.WithCancel(ctx)
	cancel()
	gone := &rowReq{ctx: left, name: "bob", rec: encode("bob", 7), rev: fresh.rev, done: make(chan struct{})}
	db.writeRows([]*rowReq{gone})
	<-gone.done
	if !errors.Is(gone.err, context.Canceled) || gone.written {
		t.Fatalf("a write whose caller left: written %v, err %v; want not written, context.Canceled", gone.written, gone.err)
	}
	if u, err := db.Get(ctx, "bob"); err != nil || u.CodeFailures != 0 {
		t.Fatalf("bob after a write whose caller left: %d failures (%v), want 0", u.CodeFailures, err)
	}
}

// TestGatheredWritesAcrossNodes: two nodes writing the same users in
// one statement each, in opposite orders, never fail a write (no
// deadlock reaches a caller); every write either lands or decides again.
func TestGatheredWritesAcrossNodes(t *testing.T) {
	pg := testtool.StartPostgres(t)
	ctx := context.Background()
	dsn, key := pg.NewDB(), filepath.Join(t.TempDir(), "seed.key")
	var nodes [2]*DB
	for i := range nodes {
		db, err := Open(ctx, dsn, Options{KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nodes[i] = db
	}
	var names []string
	for i := range 500 {
		name := fmt.Sprintf("user%03d", i)
		names = append(names, name)
		if err := nodes[0].Create(ctx, store.User{Name: name, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	batchFor := func(db *DB, order []string) []*rowReq {
		var b []*rowReq
		for _, name := range order {
			rec, rev, err := direct{db.pool, ""}.read(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, &rowReq{ctx: ctx, name: name, rec: rec, rev: rev, done: make(chan struct{})})
		}
		return b
	}
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	landed := 0
	for range 10 {
		a, b := batchFor(nodes[0], names), batchFor(nodes[1], reversed)
		var wg sync.WaitGroup
		wg.Go(func() { nodes[0].writeRows(a) })
		wg.Go(func() { nodes[1].writeRows(b) })
		wg.Wait()
		for _, r := range slices.Concat(a, b) {
			if r.err != nil {
				t.Fatalf("a gathered write failed: %v", r.err)
			}
			if r.written {
				landed++
			}
		}
	}
	// Both nodes read the same revisions each round: exactly one write of
	// each user lands per round.
	if want := 10 * len(names); landed != want {
		t.Fatalf("%d writes landed, want %d (one per user per round)", landed, want)
	}
}
