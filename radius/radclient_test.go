package radius

import (
	"bytes"
	"context"
	"crypto/md5"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	rad "layeh.com/radius"
)

// runRadclient runs FreeRADIUS's radclient (a peer we did not write) with one
// attribute line and returns its exit code and output.
func runRadclient(t *testing.T, path, addr, secret, command, attrs string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-x", "-r", "1", "-t", "1", addr, command, secret)
	cmd.Stdin = strings.NewReader(attrs + "\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("radclient: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestRadclientInterop checks the in-process server with radclient, which
// verifies the Response Authenticator and the Message-Authenticator of
// every reply.
func TestRadclientInterop(t *testing.T) {
	rc := testtool.Require(t, "radclient")
	s := startServer(t, testOptions(), &fakeAuth{fn: byPassword})
	addr := s.addr.String()
	const ma = ",Message-Authenticator=0x00"
	tests := []struct {
		name, secret, command, attrs string
		want, notWant                []string
	}{
		{name: "accept with Proxy-State", command: "auth", attrs: "User-Name=alice,User-Password=accept,Proxy-State=0x616263,Proxy-State=0x646566" + ma,
			want: []string{"Received Access-Accept", "Proxy-State = 0x616263\n\tProxy-State = 0x646566"}},
		{name: "reject", command: "auth", attrs: "User-Name=alice,User-Password=wrong" + ma,
			want: []string{"Received Access-Reject"}, notWant: []string{"Reply-Message"}},
		{name: "challenge", command: "auth", attrs: "User-Name=alice,User-Password=challenge" + ma,
			want: []string{"Received Access-Challenge", `Reply-Message = "Enter code: "`, "State = 0x"}},
		{name: "status-server", command: "status", attrs: "Message-Authenticator=0x00",
			want: []string{"Received Access-Accept"}},
		{name: "no Message-Authenticator", command: "auth", attrs: "User-Name=alice,User-Password=accept",
			want: []string{"No reply"}, notWant: []string{"Received"}},
		{name: "wrong secret", secret: "not-the-shared-secret", command: "auth", attrs: "User-Name=alice,User-Password=accept" + ma,
			want: []string{"No reply"}, notWant: []string{"Received"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := tc.secret
			if secret == "" {
				secret = testSecret
			}
			_, out := runRadclient(t, rc, addr, secret, tc.command, tc.attrs)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("radclient output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("radclient output has %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRadclientRejectsBadMessageAuthenticator shows that radclient's
// acceptance above means something: a reply whose Response Authenticator is
// right but whose Message-Authenticator is wrong is not accepted.
func TestRadclientRejectsBadMessageAuthenticator(t *testing.T) {
	rc := testtool.Require(t, "radclient")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := rad.Parse(buf[:n], []byte(testSecret))
			if err != nil {
				continue
			}
			b, err := encodeSigned(req.Response(rad.CodeAccessAccept), newMACs([]byte(testSecret)))
			if err != nil {
				continue
			}
			b[22] ^= 0xff // break the MA, then fix the Response Authenticator
			h := md5.New()
			h.Write(b[:4])
			h.Write(req.Authenticator[:])
			h.Write(b[20:])
			h.Write([]byte(testSecret))
			copy(b[4:20], h.Sum(nil))
			pc.WriteTo(b, addr)
		}
	}()
	_, out := runRadclient(t, rc, pc.LocalAddr().String(), testSecret, "auth", "User-Name=alice,User-Password=x,Message-Authenticator=0x00")
	if strings.Contains(out, "Received Access-Accept") {
		t.Fatalf("radclient accepted a reply with a bad Message-Authenticator:\n%s", out)
	}
	t.Logf("radclient on a bad Message-Authenticator:\n%s", out)
}
