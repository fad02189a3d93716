package control

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otpgate/otpgate/internal/testtool"
)

// lockedBuffer collects log output written from server goroutines.
type lockedBuffer = testtool.Buffer

// readCountingListener hands out connections that count the bytes the
// server reads from them. The conns embed *net.UnixConn, so SO_PEERCRED
// still works through them.
type readCountingListener struct {
	net.Listener
	accepted, read atomic.Int64
}

type readCountingConn struct {
	*net.UnixConn
	l *readCountingListener
}

func (c readCountingConn) Read(p []byte) (int, error) {
	n, err := c.UnixConn.Read(p)
	c.l.read.Add(int64(n))
	return n, err
}

func (l *readCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	return readCountingConn{UnixConn: c.(*net.UnixConn), l: l}, nil
}

const statusRequest = "GET /v1/status HTTP/1.1\r\nHost: " + Host + "\r\n\r\n"

// TestRefusedPeerClosedAtAccept: a peer the server refuses is disconnected
// at accept, before the server reads a byte of its request, and the refusal
// is logged once however often the peer retries.
func TestRefusedPeerClosedAtAccept(t *testing.T) {
	svc := &fakeService{}
	var logs lockedBuffer
	counting := &readCountingListener{}
	path, _ := startServerWith(t, svc, serverSetup{
		log:   slog.New(slog.NewTextHandler(&logs, nil)),
		allow: func(unix.Ucred) bool { return false },
		wrap: func(ln net.Listener) net.Listener {
			counting.Listener = ln
			return counting
		},
	})
	const attempts = 3
	for i := range attempts {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, statusRequest) // may fail: the server may have closed already
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("attempt %d: the refused connection was left open", i)
		}
		if len(got) > 0 {
			t.Errorf("attempt %d: a refused peer got a reply: %q", i, got)
		}
	}
	if n := counting.accepted.Load(); n != attempts {
		t.Errorf("accepted %d connections, want %d", n, attempts)
	}
	if n := counting.read.Load(); n != 0 {
		t.Errorf("the server read %d bytes from refused peers; want none", n)
	}
	if len(svc.calls) > 0 {
		t.Errorf("service called for a refused peer: %v", svc.calls)
	}
	out := logs.String()
	if n := strings.Count(out, "control connection refused"); n != 1 {
		t.Errorf("refusal logged %d times for %d attempts by one uid; want once a minute:\n%s", n, attempts, out)
	}
	if want := "uid=" + strconv.Itoa(os.Geteuid()); !strings.Contains(out, want) {
		t.Errorf("refusal log lacks %s:\n%s", want, out)
	}
}

func TestRefusalLogRateLimited(t *testing.T) {
	var logs lockedBuffer
	r := newRefusalLog(slog.New(slog.NewTextHandler(&logs, nil)), "otpgate")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	steps := []struct {
		advance time.Duration
		uid     uint32
		want    string // the new log line must contain this; "" means no line
	}{
		{0, 1000, "uid=1000 pid=0 refused_since_last_log=0"},
		{time.Second, 1000, ""},
		{time.Second, 1000, ""},
		{0, 1001, "uid=1001"},
		{30 * time.Second, 1000, ""},
		{refusedLogEvery, 1000, "uid=1000 pid=0 refused_since_last_log=3"},
		{time.Second, 1000, ""},
		{0, 1001, "uid=1001 pid=0 refused_since_last_log=0"}, // its minute is long over
	}
	for i, st := range steps {
		now = now.Add(st.advance)
		before := logs.String()
		r.refuse(unix.Ucred{Uid: st.uid})
		line := strings.TrimPrefix(logs.String(), before)
		switch {
		case st.want == "" && line != "":
			t.Errorf("step %d (uid %d): logged %q; want nothing within a minute", i, st.uid, line)
		case st.want != "" && !strings.Contains(line, st.want):
			t.Errorf("step %d (uid %d): logged %q; want a line with %q", i, st.uid, line, st.want)
		case st.want != "" && !strings.Contains(line, `group \"otpgate\"`):
			t.Errorf("step %d: log line does not name the admin group: %q", i, line)
		}
	}
}

// TestConnectionBound: with MaxConns connections open (idle keep-alive
// ones, here), the next one is not served until one closes.
func TestConnectionBound(t *testing.T) {
	const limit = 2
	counting := &readCountingListener{}
	path, _ := startServerWith(t, &fakeService{}, serverSetup{
		opt: ServerOptions{MaxConns: limit},
		wrap: func(ln net.Listener) net.Listener {
			counting.Listener = ln
			return counting
		},
	})
	roundTrip := func(c net.Conn, br *bufio.Reader, within time.Duration) error {
		c.SetDeadline(time.Now().Add(within))
		if _, err := io.WriteString(c, statusRequest); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return errors.New("status " + resp.Status)
		}
		return nil
	}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range limit {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if err := roundTrip(c, bufio.NewReader(c), 3*time.Second); err != nil {
			t.Fatalf("connection %d within the limit: %v", i, err)
		}
	}
	extra, err := net.Dial("unix", path) // queued in the listen backlog
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	br := bufio.NewReader(extra)
	err = roundTrip(extra, br, 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connection %d over the limit of %d: %v; want no answer while the limit is reached", limit+1, limit, err)
	}
	if n := counting.accepted.Load(); n != limit {
		t.Errorf("server accepted %d connections; want %d", n, limit)
	}
	held[0].Close()
	// The request is already written; wait for its answer.
	extra.SetDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("after a connection closed, the waiting one got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("waiting connection got %s", resp.Status)
	}
}
