package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"layeh.com/radius"

	"github.com/otpgate/otpgate/totp"
)

// Mode is how a login is sent.
type Mode string

const (
	ModeAppend    Mode = "append"    // User-Password = password + code
	ModeOTPOnly   Mode = "otp-only"  // User-Password = code
	ModeChallenge Mode = "challenge" // password, then the code with the State of the Access-Challenge
)

// Config is one load run.
type Config struct {
	Server      string // host:port
	Secret      []byte
	Users       []User
	Concurrency int           // workers, each with its own socket and one request in flight
	Duration    time.Duration // stop after this long (0: no limit, then N must be set)
	N           int           // stop after this many logins (0: no limit)
	Mode        Mode
	Timeout     time.Duration // per try
	Retries     int
	// Rate, when > 0, makes an open loop: logins are sent at this many per
	// second whatever the server answers, over Concurrency sockets with up
	// to 256 requests in flight each (overload tests; no retries, no
	// challenge mode). Otherwise each worker waits for its answer.
	Rate float64
	// OnAccept, if set, is called (from worker goroutines, concurrently)
	// for every verified Access-Accept with the user, the code sent and its
	// time step.
	OnAccept func(user, code string, step uint64)
	// Now is the clock for time steps (tests); default time.Now.
	Now func() time.Time
}

// Result is what a run measured. A login is one Access-Request in append
// and otp-only mode, two (password, then code) in challenge mode.
type Result struct {
	Logins    int // logins finished (any outcome)
	Requests  int // datagrams sent, retransmissions included
	Accept    int // logins that ended in Access-Accept
	Reject    int // logins that ended in Access-Reject
	Challenge int // Access-Challenges received (challenge mode: the first leg)
	Timeout   int // logins with a request that got no valid answer in time
	Invalid   int // responses dropped: bad authenticator, MA or identifier
	NoMA      int // valid responses without a Message-Authenticator
	Errors    int // local errors (socket); open loop: logins not sent because every Identifier was in flight

	Elapsed time.Duration // wall time of the run
	// Waited is the time the workers spent waiting because every user had
	// been used in the current time step (the user-count limit), and
	// Exhausted how many steps ran out of users.
	Waited    time.Duration
	Exhausted int

	Latencies []time.Duration // per login, sorted ascending
}

// Throughput is logins per second of wall time.
func (r *Result) Throughput() float64 { return rate(r.Logins, r.Elapsed) }

// ActiveThroughput is logins per second over the time the workers were not
// waiting for a new time step.
func (r *Result) ActiveThroughput() float64 { return rate(r.Logins, r.Elapsed-r.Waited) }

// Goodput is accepted logins per second of wall time.
func (r *Result) Goodput() float64 { return rate(r.Accept, r.Elapsed) }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Percentile returns the q-quantile (0..1) of the login latencies.
func (r *Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	i = max(0, min(i, len(r.Latencies)-1))
	return r.Latencies[i]
}

// Max returns the largest login latency.
func (r *Result) Max() time.Duration { return r.Percentile(1) }

// cursor hands out users so that no user logs in twice within a time step.
type cursor struct {
	mu        sync.Mutex
	users     []User
	now       func() time.Time
	step      uint64
	next      int
	taken     int // logins handed out (for N)
	limit     int // N, 0 = none
	deadline  time.Time
	waited    time.Duration
	exhausted int
}

var errDone = errors.New("loadgen: run done")

// take returns the next user and the time step its code is for, waiting for
// the next step when all users were used in this one.
func (c *cursor) take(ctx context.Context) (int, uint64, error) {
	for {
		c.mu.Lock()
		if c.limit > 0 && c.taken >= c.limit {
			c.mu.Unlock()
			return 0, 0, errDone
		}
		now := c.now()
		if s := totp.Default.Step(now); s != c.step {
			c.step, c.next = s, 0
		}
		if c.next < len(c.users) {
			i, s := c.next, c.step
			c.next++
			c.taken++
			c.mu.Unlock()
			return i, s, nil
		}
		wake := totp.Default.StepStart(c.step + 1)
		if c.next == len(c.users) { // first worker to find the step exhausted
			c.next++
			c.exhausted++
			end := wake
			if !c.deadline.IsZero() && c.deadline.Before(end) {
				end = c.deadline
			}
			if end.After(now) {
				c.waited += end.Sub(now)
			}
		}
		c.mu.Unlock()
		t := time.NewTimer(wake.Sub(now) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, 0, errDone
		case <-t.C:
		}
	}
}

type workerStats struct {
	Result
}

// Run generates load until Duration passed or N logins finished, whichever
// comes first. It returns an error only when it cannot start.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Users) == 0 {
		return nil, errors.New("loadgen: no users")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Duration <= 0 && cfg.N <= 0 {
		return nil, errors.New("loadgen: set a duration or a count")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch cfg.Mode {
	case ModeAppend, ModeChallenge:
		for _, u := range cfg.Users {
			if u.Password == "" {
				return nil, fmt.Errorf("loadgen: mode %s needs a plaintext password for user %q (for a CSV with hashes pass -password)", cfg.Mode, u.Name)
			}
		}
	case ModeOTPOnly:
	default:
		return nil, fmt.Errorf("loadgen: unknown mode %q (want append, otp-only or challenge)", cfg.Mode)
	}
	if cfg.Rate > 0 {
		if cfg.Duration <= 0 {
			return nil, errors.New("loadgen: an open-loop run (rate) needs a duration")
		}
		return runOpen(ctx, cfg)
	}
	clients := make([]*Client, cfg.Concurrency)
	for i := range clients {
		c, err := NewClient(cfg.Server, cfg.Secret, cfg.Timeout, cfg.Retries)
		if err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return nil, err
		}
		clients[i] = c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	start := time.Now()
	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	cur := &cursor{users: cfg.Users, now: cfg.Now, limit: cfg.N}
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithDeadline(ctx, start.Add(cfg.Duration))
		cur.deadline = start.Add(cfg.Duration)
	}
	defer cancel()

	stats := make([]workerStats, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Go(func() { work(runCtx, &cfg, cur, clients[w], &stats[w]) })
	}
	wg.Wait()

	res := &Result{Elapsed: time.Since(start)}
	for i := range stats {
		s := &stats[i].Result
		res.Logins += s.Logins
		res.Accept += s.Accept
		res.Reject += s.Reject
		res.Challenge += s.Challenge
		res.Timeout += s.Timeout
		res.NoMA += s.NoMA
		res.Errors += s.Errors
		res.Latencies = append(res.Latencies, s.Latencies...)
		res.Requests += clients[i].Sent
		res.Invalid += clients[i].Invalid
	}
	slices.Sort(res.Latencies)
	cur.mu.Lock()
	res.Waited, res.Exhausted = cur.waited, cur.exhausted
	cur.mu.Unlock()
	return res, nil
}

// ended reports whether the run's context is done or its deadline passed
// (a read deadline set to it can fire before the context's timer).
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func work(ctx context.Context, cfg *Config, cur *cursor, c *Client, st *workerStats) {
	for {
		i, step, err := cur.take(ctx)
		if err != nil {
			return
		}
		u := &cfg.Users[i]
		code := totp.Default.Code(u.Key, step)
		t0 := time.Now()
		var resp Response
		switch cfg.Mode {
		case ModeOTPOnly:
			resp, err = c.Authenticate(ctx, u.Name, code, nil)
		case ModeAppend:
			resp, err = c.Authenticate(ctx, u.Name, u.Password+code, nil)
		case ModeChallenge:
			resp, err = c.Authenticate(ctx, u.Name, u.Password, nil)
			if err == nil && resp.Code == radius.CodeAccessChallenge {
				st.Challenge++
				if !resp.HasMA {
					st.NoMA++
				}
				resp, err = c.Authenticate(ctx, u.Name, code, resp.State)
			}
		}
		if err != nil && ended(ctx) {
			return // cut off by the end of the run: not a result
		}
		st.Logins++
		switch {
		case errors.Is(err, ErrTimeout):
			st.Timeout++
			continue
		case err != nil:
			st.Errors++
			continue
		}
		st.Latencies = append(st.Latencies, time.Since(t0))
		if !resp.HasMA {
			st.NoMA++
		}
		switch resp.Code {
		case radius.CodeAccessAccept:
			st.Accept++
			if cfg.OnAccept != nil {
				cfg.OnAccept(u.Name, code, step)
			}
		case radius.CodeAccessReject:
			st.Reject++
		case radius.CodeAccessChallenge:
			st.Challenge++
		}
	}
}
