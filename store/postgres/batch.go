package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/otpgate/otpgate/store"
)

// userRows reads a user's record with its revision, and writes a record
// only if the revision is still the one read: one round of Update.
type userRows interface {
	read(ctx context.Context, name string) (rec []byte, rev int64, err error)
	write(ctx context.Context, name string, rec []byte, rev int64) (written bool, err error)
}

// direct is userRows as one statement each, on the pool or in a
// transaction (lock " FOR UPDATE" holds the row until it ends).
type direct struct {
	q    querier
	lock string
}

func (d direct) read(ctx context.Context, name string) ([]byte, int64, error) {
	var rec []byte
	var rev int64
	err := d.q.QueryRow(ctx, "SELECT record, revision FROM users WHERE name = $1"+d.lock, name).Scan(&rec, &rev)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, store.ErrUserNotFound
	}
	return rec, rev, err
}

func (d direct) write(ctx context.Context, name string, rec []byte, rev int64) (bool, error) {
	tag, err := d.q.Exec(ctx, "UPDATE users SET record = $2, revision = nextval('users_revision') WHERE name = $1 AND revision = $3", name, rec, rev)
	return tag.RowsAffected() == 1, err
}

// gathered is userRows shared by the logins under way on this node: a
// read or a write that arrives while others are being served waits for
// them and goes out with the rest of its kind as one statement (the
// reads as one SELECT ... = ANY, the writes as one UPDATE ... FROM
// unnest, one transaction and one WAL flush). A lone request goes out at
// once. Each write is still conditional on its own row's revision, and
// committed before its caller hears that it landed.
type gathered struct {
	reads  queue
	writes queue
}

// rowReq is one read or write in a gathered statement.
type rowReq struct {
	ctx     context.Context // the caller's: one that has left is not sent
	name    string
	rec     []byte
	rev     int64
	written bool
	err     error
	done    chan struct{}
}

// maxGather bounds the rows of one gathered statement.
const maxGather = 128

// gatherWorkers is how many gathered statements of each kind may be in
// flight at once: one being committed does not hold up the next.
const gatherWorkers = 4

func newGathered(db *DB) *gathered {
	g := &gathered{
		reads:  make(queue, maxGather),
		writes: make(queue, maxGather),
	}
	for range gatherWorkers {
		go g.reads.serve(db.stop, func(b []*rowReq) { db.readRows(b) })
		go g.writes.serve(db.stop, func(b []*rowReq) { db.writeRows(b) })
	}
	return g
}

func (g *gathered) read(ctx context.Context, name string) ([]byte, int64, error) {
	r := &rowReq{ctx: ctx, name: name, done: make(chan struct{})}
	if err := g.reads.do(ctx, r); err != nil {
		return nil, 0, err
	}
	return r.rec, r.rev, r.err
}

func (g *gathered) write(ctx context.Context, name string, rec []byte, rev int64) (bool, error) {
	r := &rowReq{ctx: ctx, name: name, rec: rec, rev: rev, done: make(chan struct{})}
	if err := g.writes.do(ctx, r); err != nil {
		return false, err
	}
	return r.written, r.err
}

// readRows serves a gathered read.
func (db *DB) readRows(batch []*rowReq) {
	if batch = live(batch); len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	names := make([]string, len(batch))
	for i, r := range batch {
		names[i] = r.name
	}
	type row struct {
		rec []byte
		rev int64
	}
	found := make(map[string]row, len(batch))
	rows, err := db.pool.Query(ctx, "SELECT name, record, revision FROM users WHERE name = ANY($1)", names)
	if err == nil {
		var name string
		var r row
		_, err = pgx.ForEachRow(rows, []any{&name, &r.rec, &r.rev}, func() error {
			found[name] = r
			r.rec = nil // the next row scans into a slice of its own
			return nil
		})
	}
	for _, r := range batch {
		switch f, ok := found[r.name]; {
		case err != nil:
			r.err = err
		case !ok:
			r.err = store.ErrUserNotFound
		default:
			r.rec, r.rev = f.rec, f.rev
		}
		close(r.done)
	}
}

// writeRows serves a gathered write. Of two writes of one name only the
// first goes out: they read the same revision, so at most one of them
// could land, and the other decides again on what the first wrote. The
// rows go out sorted by name, so that the gathered writes of several
// nodes lock shared rows in one order; should PostgreSQL still pick the
// statement as a deadlock victim, it wrote nothing and every write in it
// decides again, like a lost race.
func (db *DB) writeRows(batch []*rowReq) {
	if batch = live(batch); len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	firsts := make([]*rowReq, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		if !seen[r.name] {
			seen[r.name] = true
			firsts = append(firsts, r)
		}
	}
	slices.SortFunc(firsts, func(a, b *rowReq) int { return strings.Compare(a.name, b.name) })
	names, recs, revs := make([]string, len(firsts)), make([][]byte, len(firsts)), make([]int64, len(firsts))
	for i, r := range firsts {
		names[i], recs[i], revs[i] = r.name, r.rec, r.rev
	}
	landed := make(map[string]bool, len(names))
	rows, err := db.pool.Query(ctx, `UPDATE users AS u SET record = w.record, revision = nextval('users_revision')
		FROM unnest($1::text[], $2::bytea[], $3::bigint[]) AS w(name, record, revision)
		WHERE u.name = w.name AND u.revision = w.revision RETURNING u.name`, names, recs, revs)
	if err == nil {
		var name string
		_, err = pgx.ForEachRow(rows, []any{&name}, func() error {
			landed[name] = true
			return nil
		})
	}
	if lostRace(err) {
		err = nil // nothing landed: every write decides again
	}
	for _, r := range firsts {
		r.written = err == nil && landed[r.name] // a later write of its name stays unwritten
	}
	for _, r := range batch {
		r.err = err
		close(r.done)
	}
}

// live drops from batch the requests whose callers have left (their
// context ended while they waited): a login the NAS will hear nothing
// about is not written. Those are done, with their context's error.
func live(batch []*rowReq) []*rowReq {
	return slices.DeleteFunc(batch, func(r *rowReq) bool {
		if r.err = r.ctx.Err(); r.err != nil {
			close(r.done)
			return true
		}
		return false
	})
}

// lostRace reports whether err is PostgreSQL giving up a statement to let
// another go first (a deadlock or serialization failure): it was rolled
// back whole.
func lostRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// queue hands requests to workers that serve whatever has gathered.
type queue chan *rowReq

// do queues r and waits until it is served or ctx ends; a request served
// after its caller left is served all the same.
func (q queue) do(ctx context.Context, r *rowReq) error {
	select {
	case q <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serve takes a request, then every other one already queued (up to
// maxGather), serves them together, and again, until stop is closed.
func (q queue) serve(stop <-chan struct{}, fn func([]*rowReq)) {
	batch := make([]*rowReq, 0, maxGather)
	for {
		select {
		case r := <-q:
			batch = append(batch[:0], r)
		case <-stop:
			return
		}
	fill:
		for len(batch) < maxGather {
			select {
			case r := <-q:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		fn(batch)
	}
}
