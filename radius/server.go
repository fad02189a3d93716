package radius

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	rad "layeh.com/radius"

	"github.com/otpgate/otpgate/auth"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("radius: server closed")

const (
	maxDatagram = rad.MaxPacketLength
)

// Authenticator makes the access decision; *auth.Authenticator implements it.
type Authenticator interface {
	Authenticate(context.Context, auth.Request) auth.Decision
}

// packetWriter is the part of net.PacketConn used to answer.
type packetWriter interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
}

// settings is what Reload swaps atomically. A request keeps the client it
// was received with, so a reload never affects one in flight.
type settings struct {
	clients     *clientTable
	rejectDelay time.Duration
}

// job is one Access-Request waiting for or in a worker. Its reply-cache
// entry begins in enqueue (in flight: retransmissions are dropped) and ends
// exactly once, in send (answered: retransmissions get the cached reply) or
// in drop (forgotten: a retransmission is evaluated).
type job struct {
	w        packetWriter
	addr     net.Addr
	src      netip.AddrPort
	pkt      *rad.Packet
	client   *client
	entry    *cacheEntry
	received time.Time
	done     sync.Once
}

// Server is the RADIUS/UDP server. Create it with New.
type Server struct {
	auth    Authenticator
	log     *slog.Logger
	audit   *slog.Logger
	ready   func() bool // Options.Ready
	set     atomic.Pointer[settings]
	cache   *replyCache
	unknown *unknownLimiter
	// badMA and missingMA rate-limit the warnings for a known client whose
	// requests are dropped: the usual misconfigurations of a new NAS.
	badMA, missingMA *unknownLimiter
	acct             accounting
	metrics          *metrics
	queue            chan *job
	queueShare       int64 // how many of queue's slots one client may hold
	workers          int
	now              func() time.Time

	// statusMA rate-limits the warning for Status-Server without
	// Message-Authenticator, whose fix is not the Access-Request one;
	// unsupported the one for requests using CHAP, MS-CHAP or EAP; overload
	// the one for requests the Authenticator dropped.
	statusMA, unsupported, overload *unknownLimiter

	baseCtx context.Context // passed to the Authenticator; canceled on a forced shutdown
	cancel  context.CancelFunc

	startWorkers sync.Once
	closeQueue   sync.Once
	workerWG     sync.WaitGroup
	readers      sync.WaitGroup
	pending      sync.WaitGroup // accepted requests until answered or dropped

	mu      sync.Mutex
	closing bool
	conns   map[net.PacketConn]struct{} // the sockets Serve reads, stopped by Shutdown
}

// New validates opt and returns a server that is not yet listening. log and
// audit may be nil (discarded).
func New(opt Options, a Authenticator, log, audit *slog.Logger) (*Server, error) {
	if a == nil {
		return nil, errors.New("radius: nil authenticator")
	}
	if err := opt.checkPool(); err != nil {
		return nil, err
	}
	if err := opt.checkReloadable(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if audit == nil {
		audit = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		auth:    a,
		log:     log,
		audit:   audit,
		metrics: newMetrics(),
		now:     time.Now,
		ready:   opt.Ready,
		conns:   make(map[net.PacketConn]struct{}),
	}
	st, err := s.settingsFrom(opt)
	if err != nil {
		return nil, err
	}
	s.set.Store(st)
	s.cache = newReplyCache(opt.ReplyCacheTTL, opt.ReplyCacheMaxEntries, s.now)
	s.unknown = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: dropped datagrams from unknown clients, too many sources to log one by one"))
	s.badMA = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: dropped requests with an invalid Message-Authenticator, too many sources to log one by one"))
	s.missingMA = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: dropped requests without Message-Authenticator, too many sources to log one by one"))
	s.statusMA = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: dropped Status-Server without Message-Authenticator, too many sources to log one by one"))
	s.unsupported = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: rejected requests using CHAP, MS-CHAP or EAP, too many sources to log one by one"))
	s.overload = newUnknownLimiter(s.now).withSummary(s.dropSummary("radius: dropped requests under overload, too many sources to log one by one"))
	s.workers = opt.Handlers
	// One client may have QueueLen requests waiting for a handler: a NAS's
	// burst (up to 256 outstanding Identifiers per socket) fits. The queue
	// holds twice that, so a client at its share still leaves as much room
	// for all the others.
	s.queue = make(chan *job, 2*opt.QueueLen)
	s.queueShare = int64(opt.QueueLen)
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// dropSummary logs, under msg, the drops a limiter did not log one by one.
func (s *Server) dropSummary(msg string) func(dropped, sources int) {
	return func(dropped, sources int) {
		s.log.Warn(msg, "dropped", dropped, "sources", sources)
	}
}

// flushWarnings writes the summaries of drops not logged yet.
func (s *Server) flushWarnings() {
	for _, l := range []*unknownLimiter{s.unknown, s.badMA, s.missingMA, s.statusMA, s.unsupported, s.overload} {
		l.flush()
	}
}

func (s *Server) settingsFrom(opt Options) (*settings, error) {
	ct, err := newClientTable(opt.Clients, s.log)
	if err != nil {
		return nil, err
	}
	if len(ct.entries) == 0 {
		s.log.Warn("radius: no [[client]] configured; every request will be dropped")
	}
	return &settings{clients: ct, rejectDelay: opt.RejectDelay}, nil
}

// Reload swaps the client table, modes, reject delay and reply cache limits.
// On error the running configuration is kept. Requests already received keep
// the client (and secret) they arrived with. Handlers and QueueLen
// are fixed at New; Reload ignores them.
func (s *Server) Reload(opt Options) error {
	if err := opt.checkReloadable(); err != nil {
		return fmt.Errorf("radius: reload: %w", err)
	}
	st, err := s.settingsFrom(opt)
	if err != nil {
		return fmt.Errorf("radius: reload: %w", err)
	}
	s.set.Store(st)
	s.cache.setLimits(opt.ReplyCacheTTL, opt.ReplyCacheMaxEntries)
	return nil
}

// Serve reads datagrams from pc until ctx is canceled (returns nil),
// Shutdown is called (returns nil) or a read fails (returns the error). It
// does not close pc; answers to requests still in flight are written to pc
// after Serve returns, so close it only after Shutdown.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	return s.serve(ctx, pc, s.receive)
}

// serve is the read loop of Serve and ServeAccounting; recv handles one
// datagram, which is only valid during the call.
func (s *Server) serve(ctx context.Context, pc net.PacketConn, recv func(w packetWriter, local netip.AddrPort, addr net.Addr, b []byte)) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.conns[pc] = struct{}{}
	_ = pc.SetReadDeadline(time.Time{}) // a deadline left by an earlier, canceled Serve
	s.readers.Add(1)
	s.mu.Unlock()
	defer s.readers.Done()

	s.startWorkers.Do(func() {
		for range s.workers {
			s.workerWG.Add(1)
			go s.worker()
		}
	})
	// A past read deadline unblocks ReadFrom but leaves the socket open for
	// the answers still to be written.
	stopRead := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Now()) })
	defer stopRead()

	local := addrPortOf(pc.LocalAddr())
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || s.isClosing() {
				return nil
			}
			return fmt.Errorf("radius: read %s: %w", pc.LocalAddr(), err)
		}
		recv(pc, local, addr, buf[:n])
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops reading on every socket, waits until every accepted request
// has been answered or dropped (including delayed rejects) and stops the
// workers. It closes no socket: whoever opened them closes them after
// Shutdown returns. If ctx ends first, the Authenticator's context is
// canceled and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for pc := range s.conns {
		_ = pc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	drained := make(chan struct{})
	go func() {
		s.readers.Wait()
		s.pending.Wait()
		s.closeQueue.Do(func() { close(s.queue) })
		s.workerWG.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = fmt.Errorf("radius: shutdown: %w", ctx.Err())
	}
	s.cancel()
	s.flushWarnings()
	return err
}

// addrPortOf converts a socket address; IPv4-mapped addresses are unmapped.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	case nil:
		return netip.AddrPort{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
}

// receive runs the cheap part of the chain in the read loop: client lookup,
// load shedding, parse, Message-Authenticator and Proxy-State rules, reply
// cache, enqueue. b is only valid during the call.
func (s *Server) receive(w packetWriter, local netip.AddrPort, addr net.Addr, b []byte) {
	src := addrPortOf(addr)
	if !src.IsValid() {
		s.metrics.drops.inc(dropMalformed)
		return
	}
	c := s.clientFor(src)
	if c == nil || s.shed(b, c) {
		return
	}
	pkt, err := rad.Parse(b, c.secret)
	if err != nil {
		s.metrics.drops.inc(dropMalformed)
		s.log.Debug("radius: dropped malformed packet", "client", c.name, "source", src.String(), "err", err)
		return
	}
	switch pkt.Code {
	case rad.CodeAccessRequest, rad.CodeStatusServer:
	default:
		s.metrics.drops.inc(dropUnsupportedCode)
		s.log.Debug("radius: dropped unsupported packet code", "client", c.name, "code", pkt.Code.String())
		return
	}
	if !s.authentic(pkt, b[:binary.BigEndian.Uint16(b[2:4])], c, src) {
		return
	}
	if pkt.Code == rad.CodeStatusServer {
		s.answerStatus(w, addr, pkt, c)
		return
	}
	s.enqueue(&job{w: w, addr: addr, src: src, pkt: pkt, client: c, received: s.now()}, local)
}

// clientFor finds the client src belongs to; datagrams from anywhere else
// are dropped, with a bounded warning.
func (s *Server) clientFor(src netip.AddrPort) *client {
	c := s.set.Load().clients.lookup(src.Addr())
	if c == nil {
		s.metrics.drops.inc(dropUnknownClient)
		if ok, n := s.unknown.note(src.Addr()); ok {
			s.log.Warn("radius: dropped datagrams from an unknown client", "source", src.Addr().String(), "dropped", n)
		}
	}
	return c
}

// shed drops an Access-Request before the parse and the HMAC when every
// handler is busy and the queue is full (or this client's share of it): it
// would be dropped after them anyway, and under overload that work is what
// the handlers need. The NAS retransmits. Status-Server, the health check,
// still gets its answer.
func (s *Server) shed(b []byte, c *client) bool {
	if len(b) > 0 && rad.Code(b[0]) == rad.CodeAccessRequest &&
		(len(s.queue) == cap(s.queue) || c.queued.Load() >= s.queueShare) {
		s.metrics.drops.inc(dropOverload)
		return true
	}
	return false
}

// authentic applies the Message-Authenticator and Proxy-State rules to a
// parsed packet (raw is its bytes): false means it was dropped.
func (s *Server) authentic(pkt *rad.Packet, raw []byte, c *client, src netip.AddrPort) bool {
	switch checkMessageAuthenticator(raw, c.macs) {
	case maInvalid:
		s.metrics.drops.inc(dropBadMA)
		if ok, n := s.badMA.note(src.Addr()); ok {
			s.log.Warn("radius: dropped requests with an invalid Message-Authenticator; is the shared secret the same on the NAS?",
				"client", c.name, "source", src.Addr().String(), "dropped", n)
		}
		return false
	case maAbsent:
		if pkt.Code == rad.CodeStatusServer {
			// RFC 5997 §3: Status-Server without it is always discarded;
			// require_message_authenticator does not apply, so the advice
			// for Access-Requests would be wrong here.
			s.metrics.drops.inc(dropMissingMA)
			if ok, n := s.statusMA.note(src.Addr()); ok {
				s.log.Warn("radius: dropped Status-Server without Message-Authenticator; RFC 5997 requires one whatever require_message_authenticator says: make the NAS's status checks send it (radclient: Message-Authenticator = 0x00)",
					"client", c.name, "source", src.Addr().String(), "dropped", n)
			}
			return false
		}
		if c.requireMA {
			s.metrics.drops.inc(dropMissingMA)
			if ok, n := s.missingMA.note(src.Addr()); ok {
				s.log.Warn("radius: dropped requests without Message-Authenticator (BlastRADIUS protection); update the NAS, or set require_message_authenticator = false for this client only",
					"client", c.name, "source", src.Addr().String(), "dropped", n)
			}
			return false
		}
		if c.limitProxyState && hasProxyState(pkt) {
			s.metrics.drops.inc(dropProxyState)
			s.log.Debug("radius: dropped packet with Proxy-State but no Message-Authenticator", "client", c.name, "source", src.String())
			return false
		}
	}
	return true
}

// enqueue starts j's reply-cache entry and hands j to the handlers. A
// retransmission of a request in flight is dropped; one of an answered
// request gets the cached reply, without being evaluated again.
func (s *Server) enqueue(j *job, local netip.AddrPort) {
	act, cached, entry := s.cache.begin(cacheKey{local: local, remote: j.src, id: j.pkt.Identifier}, j.pkt.Authenticator)
	switch act {
	case cacheInFlight:
		s.metrics.drops.inc(dropDuplicate)
		return
	case cacheResend:
		s.metrics.cacheHits.Inc()
		if _, err := j.w.WriteTo(cached, j.addr); err != nil {
			s.log.Debug("radius: resend cached reply", "client", j.client.name, "err", err)
		}
		return
	}
	j.entry = entry
	s.pending.Add(1)
	if j.client.queued.Add(1) <= s.queueShare {
		select {
		case s.queue <- j:
			return
		default:
		}
	}
	j.client.queued.Add(-1)
	s.drop(j, dropOverload)
}

func (s *Server) answerStatus(w packetWriter, addr net.Addr, pkt *rad.Packet, c *client) {
	if s.ready != nil && !s.ready() {
		s.metrics.drops.inc(dropNotReady)
		return
	}
	b, err := statusResponse(pkt, c.macs)
	if err != nil {
		s.log.Error("radius: status-server reply", "client", c.name, "err", err)
		return
	}
	s.metrics.requests.inc("status_server")
	if _, err := w.WriteTo(b, addr); err != nil {
		s.log.Debug("radius: write status-server reply", "client", c.name, "err", err)
	}
}

func (s *Server) worker() {
	defer s.workerWG.Done()
	for j := range s.queue {
		s.safeProcess(j)
	}
}

// finish marks a job as answered or dropped, exactly once.
func (s *Server) finish(j *job) { j.done.Do(s.pending.Done) }

// safeProcess runs process and turns a panic into a dropped request: it is
// logged without the panic value (which might hold a secret), counted, and
// the in-flight entry is cleared so the NAS's retransmission is evaluated.
func (s *Server) safeProcess(j *job) {
	defer func() {
		if r := recover(); r != nil {
			s.metrics.panics.Inc()
			s.log.Error("radius: panic while handling a request; request dropped",
				"client", j.client.name, "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
			s.drop(j, dropInternal)
		}
	}()
	s.process(j)
}

// process evaluates one request and answers it.
func (s *Server) process(j *job) {
	j.client.queued.Add(-1) // out of the queue: its client may queue another
	req, ok := buildRequest(j.pkt, j.client, j.src)
	var d auth.Decision
	switch method := unsupportedMethod(j.pkt); {
	case method != "":
		d = auth.Decision{Result: auth.Reject, Reason: reasonUnsupportedMethod}
		if warn, n := s.unsupported.note(j.src.Addr()); warn {
			s.log.Warn("radius: rejected requests that use an authentication method otpgated cannot check; configure the NAS to send PAP (User-Password)",
				"client", j.client.name, "source", j.src.Addr().String(), "method", method, "rejected", n)
		}
	case ok:
		d = s.auth.Authenticate(s.baseCtx, req)
	default:
		d = auth.Decision{Result: auth.Reject, Reason: auth.ReasonMalformed}
	}
	elapsed := s.now().Sub(j.received)
	if d.Result == auth.Drop && d.Reason == auth.ReasonUnavailable {
		// The store could not decide (auth logged why): no answer, so the
		// NAS fails over to another server.
		s.drop(j, dropStoreUnavailable)
		return
	}
	if d.Result == auth.Drop {
		// No answer, so no audit line: the NAS retransmits and the retry's
		// decision is audited. A line per drop would let a flooding client,
		// refused at once past its share of the hash workers, write to the
		// audit log at its own rate.
		s.drop(j, dropOverload)
		if warn, n := s.overload.note(j.src.Addr()); warn && s.baseCtx.Err() == nil {
			s.log.Warn("radius: dropped requests: the password-hash workers are busy, or this client already has its share of requests waiting; the NAS retransmits",
				"client", j.client.name, "source", j.src.Addr().String(), "dropped", n)
		}
		return
	}
	b, d, err := buildResponse(j.pkt, d, j.client.macs)
	if err != nil {
		s.log.Error("radius: build response; request dropped", "client", j.client.name, "err", err)
		s.drop(j, dropInternal)
		return
	}
	s.metrics.answered(d, elapsed)
	s.auditDecision(req, d, elapsed)

	if d.Result == auth.Reject {
		if wait := s.set.Load().rejectDelay - s.now().Sub(j.received); wait > 0 {
			// The entry stays in flight until the reject is written, so a
			// retransmission meanwhile is dropped, not answered early.
			time.AfterFunc(wait, func() { s.send(j, b) })
			return
		}
	}
	s.send(j, b)
}

// drop ends a job without an answer: its reply-cache entry is forgotten, so
// the NAS's retransmission is evaluated.
func (s *Server) drop(j *job, reason string) {
	s.cache.abort(j.entry)
	s.metrics.drops.inc(reason)
	s.finish(j)
}

// send ends a job with its answer: the response is cached for
// retransmissions, then written.
func (s *Server) send(j *job, b []byte) {
	defer s.finish(j)
	s.cache.finish(j.entry, b)
	if _, err := j.w.WriteTo(b, j.addr); err != nil {
		s.log.Debug("radius: write reply", "client", j.client.name, "err", err)
	}
}
