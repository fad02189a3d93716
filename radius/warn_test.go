package radius

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUnknownLimiterBoundsLinesOverAllSources: past warnBurst lines in an
// interval, sources are only counted; the count comes out in one summary
// when the next interval starts (or at flush), and lines flow again.
func TestUnknownLimiterBoundsLinesOverAllSources(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	type sum struct{ dropped, sources int }
	var sums []sum
	u := newUnknownLimiter(clk.now).withSummary(func(d, s int) { sums = append(sums, sum{d, s}) })
	logged := 0
	for i := range 1000 {
		if ok, _ := u.note(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})); ok {
			logged++
		}
	}
	if logged != warnBurst || len(sums) != 0 {
		t.Fatalf("%d lines and %d summaries for 1000 sources in one interval, want %d lines and no summary yet", logged, len(sums), warnBurst)
	}
	clk.advance(time.Minute)
	if ok, n := u.note(netip.MustParseAddr("192.0.2.1")); !ok || n != 1 {
		t.Fatalf("first source of the next interval: %v %d, want a line", ok, n)
	}
	if len(sums) != 1 || sums[0] != (sum{990, 990}) {
		t.Fatalf("summaries %v, want one of 990 drops from 990 sources", sums)
	}
	u.flush()
	if len(sums) != 1 {
		t.Fatalf("flush with nothing left out wrote a summary: %v", sums)
	}
	for i := range warnBurst {
		u.note(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
	}
	u.flush()
	if len(sums) != 2 || sums[1] != (sum{1, 1}) {
		t.Fatalf("summaries %v, want a second one of 1 drop from 1 source", sums)
	}
}

// TestUnknownLimiterSummaryAtIntervalEnd: the summary comes when the
// interval ends even if no datagram follows.
func TestUnknownLimiterSummaryAtIntervalEnd(t *testing.T) {
	sums := make(chan [2]int, 1)
	u := newUnknownLimiter(time.Now).withSummary(func(d, s int) { sums <- [2]int{d, s} })
	u.interval = 50 * time.Millisecond
	for i := range warnBurst + 3 {
		u.note(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	select {
	case got := <-sums:
		if got != [2]int{3, 3} {
			t.Fatalf("summary %v, want 3 drops from 3 sources", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no summary after the interval")
	}
}

// TestManySourcesBoundedWarnings: one datagram from each of 60,000 source
// addresses writes at most warnBurst warning lines and one summary with the
// rest, for unknown sources and for a client's requests dropped for a bad
// or missing Message-Authenticator. The datagrams are handed to the read
// loop's handler with fabricated source addresses.
func TestManySourcesBoundedWarnings(t *testing.T) {
	const sources = 60000
	tests := []struct {
		name, line, summary string
		src                 func(i int) netip.Addr
		opts                reqOpts
		reason              string
	}{
		{"unknown source", "dropped datagrams from an unknown client", "dropped datagrams from unknown clients",
			func(i int) netip.Addr { return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}) },
			reqOpts{user: "a", password: "b"}, dropUnknownClient},
		{"bad Message-Authenticator", "dropped requests with an invalid Message-Authenticator;", "dropped requests with an invalid Message-Authenticator, too many",
			func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) },
			reqOpts{user: "a", password: "b", signSecret: "not-the-secret"}, dropBadMA},
		{"missing Message-Authenticator", "dropped requests without Message-Authenticator (BlastRADIUS", "dropped requests without Message-Authenticator, too many",
			func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) },
			reqOpts{user: "a", password: "b", noMA: true}, dropMissingMA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testOptions()
			cfg.Clients = []Client{testNAS("nas-net", "10.0.0.0/8", true, true)}
			logs := &syncBuffer{}
			s, err := New(cfg, &fakeAuth{}, slog.New(slog.NewTextHandler(logs, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			b := makeRequest(t, tc.opts)
			local := netip.MustParseAddrPort("127.0.0.1:1812")
			w := &recordingWriter{}
			for i := range sources {
				s.receive(w, local, &net.UDPAddr{IP: tc.src(i).AsSlice(), Port: 40000}, b)
			}
			if got := valueOf(s.metrics.drops, tc.reason); got != sources {
				t.Fatalf("%d drops (%s), want %d", got, tc.reason, sources)
			}
			if n := strings.Count(logs.String(), tc.line); n > warnBurst {
				t.Fatalf("%d warning lines for %d sources, want at most %d", n, sources, warnBurst)
			}
			s.flushWarnings() // as Shutdown, or the end of the minute, does
			checkSummary(t, logs.String(), tc.summary, sources-warnBurst)
		})
	}
}

// checkSummary finds the one summary line and its counts.
func checkSummary(t *testing.T, logs, summary string, dropped int) {
	t.Helper()
	if n := strings.Count(logs, summary); n != 1 {
		t.Fatalf("%d summary lines %q, want 1:\n%.2000s", n, summary, logs)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(summary) + `[^"]*" dropped=(\d+) sources=(\d+)`).FindStringSubmatch(logs)
	if want := fmt.Sprint(dropped); m == nil || m[1] != want || m[2] != want {
		t.Fatalf("summary %q, want dropped=%d sources=%d", m, dropped, dropped)
	}
}

// TestManyLoopbackSourcesBoundedWarnings: the same over the wire, from
// sockets bound to many addresses of 127.0.0.0/8.
func TestManyLoopbackSourcesBoundedWarnings(t *testing.T) {
	const sources = 300
	cfg := testOptions()
	cfg.Clients = []Client{testNAS("elsewhere", "10.0.0.0/8", true, true)}
	s := startServer(t, cfg, &fakeAuth{})
	b := makeRequest(t, reqOpts{user: "a", password: "b"})
	for i := range sources {
		c := newClientFrom(t, fmt.Sprintf("127.1.%d.%d", i/200, i%200+1), s.addr)
		c.send(b)
		c.conn.Close()
		// One at a time: a burst of 300 can overflow the test socket's
		// receive buffer on a loaded machine, and a datagram the kernel
		// drops never reaches the code under test.
		waitFor(t, "the datagram dropped", func() bool { return valueOf(s.metrics.drops, dropUnknownClient) == uint64(i+1) })
	}
	if n := strings.Count(s.log.String(), "dropped datagrams from an unknown client"); n > warnBurst {
		t.Fatalf("%d warning lines for %d sources, want at most %d", n, sources, warnBurst)
	}
	s.flushWarnings()
	checkSummary(t, s.log.String(), "dropped datagrams from unknown clients", sources-warnBurst)
}
