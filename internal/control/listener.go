package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultMaxConns bounds the connections the control socket holds open at
// once, so that even an allowed peer cannot use up the daemon's file
// descriptors. Further connections wait in the kernel's listen backlog.
const DefaultMaxConns = 64

// refusedLogEvery is how often a refused uid is logged at most.
const refusedLogEvery = time.Minute

// peerListener checks every connection's SO_PEERCRED at Accept: a peer the
// server does not allow is closed before a byte of it is read, so a refused
// local user cannot hold connections (and file descriptors) open through
// ReadHeaderTimeout. It also bounds the connections open at once.
type peerListener struct {
	net.Listener
	allow   func(unix.Ucred) bool
	slots   chan struct{}
	done    chan struct{}
	closing sync.Once
	refused *refusalLog
}

func newPeerListener(ln net.Listener, allow func(unix.Ucred) bool, maxConns int, refused *refusalLog) *peerListener {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	return &peerListener{
		Listener: ln,
		allow:    allow,
		slots:    make(chan struct{}, maxConns),
		done:     make(chan struct{}),
		refused:  refused,
	}
}

// Accept waits for a free slot, then returns the next connection from an
// allowed peer, closing refused ones on the way.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, fmt.Errorf("control: accept: %w", net.ErrClosed)
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		cred, err := peerCredentials(c)
		if err != nil {
			c.Close()
			<-l.slots
			l.refused.noCredentials(err)
			continue
		}
		if !l.allow(cred) {
			c.Close()
			<-l.slots
			l.refused.refuse(cred)
			continue
		}
		return &peerConn{Conn: c, cred: cred, release: func() { <-l.slots }}, nil
	}
}

// Close stops Accept (also one waiting for a slot) and closes the listener.
func (l *peerListener) Close() error {
	l.closing.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// peerConn is an accepted connection with its peer's credentials; Close
// frees its slot once.
type peerConn struct {
	net.Conn
	cred    unix.Ucred
	release func()
	once    sync.Once
}

func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// peerCredentials reads SO_PEERCRED from a Unix socket connection (or a
// wrapper of one that implements syscall.Conn).
func peerCredentials(c net.Conn) (unix.Ucred, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return unix.Ucred{}, errors.New("control: connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return unix.Ucred{}, fmt.Errorf("control: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return unix.Ucred{}, fmt.Errorf("control: peer credentials: %w", err)
	}
	if gerr != nil {
		return unix.Ucred{}, fmt.Errorf("control: peer credentials: %w", gerr)
	}
	if cred == nil {
		return unix.Ucred{}, errors.New("control: peer credentials: none")
	}
	return *cred, nil
}

// refusalLog logs refused peers at most once per refusedLogEvery per uid,
// with the number of refusals not logged since.
type refusalLog struct {
	log   *slog.Logger
	group string
	now   func() time.Time

	mu   sync.Mutex
	seen map[uint32]*refusal
}

type refusal struct {
	logged     time.Time
	suppressed int
}

// noCredsUID keys the "no credentials" refusals (no real uid is -1).
const noCredsUID = ^uint32(0)

func newRefusalLog(log *slog.Logger, group string) *refusalLog {
	return &refusalLog{log: log, group: group, now: time.Now, seen: map[uint32]*refusal{}}
}

// due reports whether uid's refusal should be logged now, and how many
// were suppressed since the last log line.
func (r *refusalLog) due(uid uint32) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if e, ok := r.seen[uid]; ok && now.Sub(e.logged) < refusedLogEvery {
		e.suppressed++
		return false, 0
	}
	if len(r.seen) >= 1024 { // bounded: forget uids not logged for a while
		for id, e := range r.seen {
			if now.Sub(e.logged) >= refusedLogEvery {
				delete(r.seen, id)
			}
		}
	}
	suppressed := 0
	if e, ok := r.seen[uid]; ok {
		suppressed = e.suppressed
	}
	r.seen[uid] = &refusal{logged: now}
	return true, suppressed
}

func (r *refusalLog) refuse(cred unix.Ucred) {
	if ok, suppressed := r.due(cred.Uid); ok {
		who := "root or the daemon's user only"
		if r.group != "" {
			who = fmt.Sprintf("root, the daemon's user or group %q only", r.group)
		}
		r.log.Warn("control connection refused: peer not allowed ("+who+")",
			"uid", cred.Uid, "pid", cred.Pid, "refused_since_last_log", suppressed)
	}
}

func (r *refusalLog) noCredentials(err error) {
	if ok, suppressed := r.due(noCredsUID); ok {
		r.log.Warn("control connection refused: peer credentials unavailable", "err", err, "refused_since_last_log", suppressed)
	}
}

// connContext records the peer credentials of every accepted connection
// (read at Accept by peerListener) for the per-request guard and handlers.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*peerConn); ok {
		return withPeer(ctx, pc.cred)
	}
	cred, err := peerCredentials(c)
	if err != nil {
		return ctx
	}
	return withPeer(ctx, cred)
}
