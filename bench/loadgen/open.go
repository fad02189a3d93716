package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"layeh.com/radius"

	"github.com/otpgate/otpgate/totp"
)

// openSocket is one UDP socket of an open-loop run: up to 256 requests in
// flight, told apart by Identifier.
type openSocket struct {
	conn *net.UDPConn
	mu   sync.Mutex
	slot [256]*inflight
	next int
	used int
}

type inflight struct {
	auth   [16]byte
	sent   time.Time
	user   string
	code   string
	step   uint64
	packet []byte
}

// runOpen sends at cfg.Rate logins per second whatever the server does (an
// open loop, for overload tests), over cfg.Concurrency sockets, and
// collects the answers as they come.
func runOpen(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Mode == ModeChallenge {
		return nil, errors.New("loadgen: -rate supports append and otp-only, not challenge")
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("loadgen: server %q: %w", cfg.Server, err)
	}
	socks := make([]*openSocket, cfg.Concurrency)
	for i := range socks {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			for _, s := range socks[:i] {
				s.conn.Close()
			}
			return nil, fmt.Errorf("loadgen: dial %s: %w", cfg.Server, err)
		}
		conn.SetReadBuffer(1 << 20)
		socks[i] = &openSocket{conn: conn}
	}

	start := time.Now()
	end := start.Add(cfg.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	cur := &cursor{users: cfg.Users, now: cfg.Now, limit: cfg.N, deadline: end}

	var mu sync.Mutex // guards res
	res := &Result{}
	var saturated int
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Go(func() { s.receive(&cfg, res, &mu, done) })
	}

	// Pacer: keep the number sent at Rate * elapsed.
	sent := 0
	rr := 0
pace:
	for {
		if runCtx.Err() != nil {
			break
		}
		target := int(cfg.Rate * time.Since(start).Seconds())
		for sent < target {
			i, step, err := cur.take(runCtx)
			if err != nil {
				break pace
			}
			u := &cfg.Users[i]
			code := totp.Default.Code(u.Key, step)
			pw := code
			if cfg.Mode == ModeAppend {
				pw = u.Password + code
			}
			ok := false
			for range len(socks) {
				s := socks[rr%len(socks)]
				rr++
				if s.send(cfg.Secret, u.Name, pw, code, step) {
					ok = true
					break
				}
			}
			sent++
			if !ok {
				saturated++ // every Identifier of every socket in flight
			}
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	// Give the last requests their timeout, then stop the receivers.
	time.Sleep(cfg.Timeout)
	close(done)
	for _, s := range socks {
		s.conn.SetReadDeadline(time.Now())
	}
	wg.Wait()
	for _, s := range socks {
		s.conn.Close()
		for _, f := range s.slot {
			if f != nil {
				res.Timeout++
				res.Logins++
			}
		}
	}
	res.Elapsed = elapsed
	res.Errors += saturated
	res.Requests = sent - saturated
	slices.Sort(res.Latencies)
	res.Waited, res.Exhausted = cur.waited, cur.exhausted
	return res, nil
}

// send puts one request in flight on s; false when all 256 Identifiers are.
func (s *openSocket) send(secret []byte, user, pw, code string, step uint64) bool {
	s.mu.Lock()
	if s.used == len(s.slot) {
		s.mu.Unlock()
		return false
	}
	for s.slot[s.next%256] != nil {
		s.next++
	}
	id := byte(s.next % 256)
	s.next++
	pkt, auth, err := buildRequest(secret, id, user, pw, nil)
	if err != nil {
		s.mu.Unlock()
		return false
	}
	s.slot[id] = &inflight{auth: auth, sent: time.Now(), user: user, code: code, step: step}
	s.used++
	s.mu.Unlock()
	s.conn.Write(pkt)
	return true
}

// receive reads answers and expires requests older than cfg.Timeout until
// done is closed.
func (s *openSocket) receive(cfg *Config, res *Result, mu *sync.Mutex, done <-chan struct{}) {
	buf := make([]byte, 4096)
	lastSweep := time.Now()
	for {
		select {
		case <-done:
			return
		default:
		}
		s.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := s.conn.Read(buf)
		now := time.Now()
		if err == nil && n >= 20 {
			id := buf[1]
			s.mu.Lock()
			f := s.slot[id]
			var resp Response
			ok := false
			if f != nil {
				resp, ok = verifyResponse(buf[:n], id, f.auth, cfg.Secret)
				if ok {
					s.slot[id] = nil
					s.used--
				}
			}
			s.mu.Unlock()
			mu.Lock()
			if !ok {
				res.Invalid++
			} else {
				res.Logins++
				res.Latencies = append(res.Latencies, now.Sub(f.sent))
				if !resp.HasMA {
					res.NoMA++
				}
				switch resp.Code {
				case radius.CodeAccessAccept:
					res.Accept++
				case radius.CodeAccessReject:
					res.Reject++
				case radius.CodeAccessChallenge:
					res.Challenge++
				}
			}
			mu.Unlock()
			if ok && resp.Code == radius.CodeAccessAccept && cfg.OnAccept != nil {
				cfg.OnAccept(f.user, f.code, f.step)
			}
		}
		if now.Sub(lastSweep) >= 10*time.Millisecond {
			lastSweep = now
			expired := 0
			s.mu.Lock()
			for i, f := range s.slot {
				if f != nil && now.Sub(f.sent) > cfg.Timeout {
					s.slot[i] = nil
					s.used--
					expired++
				}
			}
			s.mu.Unlock()
			if expired > 0 {
				mu.Lock()
				res.Timeout += expired
				res.Logins += expired
				mu.Unlock()
			}
		}
	}
}
