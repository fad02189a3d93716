package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	receivedRe     = regexp.MustCompile(`Received (Access-\w+) Id`)
	stateRe        = regexp.MustCompile(`State = (0x[0-9a-f]+)`)
	replyMessageRe = regexp.MustCompile(`Reply-Message = "((?:[^"\\]|\\.)*)"`)
)

// radReply is what radclient printed of one exchange.
type radReply struct {
	code  string   // "Access-Accept", ...; "" when no reply came
	state string   // the reply's State, 0x and hex; "" for none
	msgs  []string // the reply's Reply-Messages
	out   string   // radclient's whole output
}

// radclientSend sends one Access-Request with attrs (in radclient's
// syntax) and a Message-Authenticator to addr with FreeRADIUS's radclient:
// 5 s for an answer, one retry.
func radclientSend(t *testing.T, addr, secret string, attrs ...string) radReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, "radclient"), "-x", "-r", "1", "-t", "5", addr, "auth", secret)
	cmd.Stdin = strings.NewReader(strings.Join(append(attrs, "Message-Authenticator=0x00"), ",") + "\n")
	b, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("radclient: %v", err)
	}
	r := radReply{out: string(b)}
	if m := receivedRe.FindStringSubmatch(r.out); m != nil {
		r.code = m[1]
	}
	_, reply, _ := strings.Cut(r.out, "Received ") // not the State we sent
	if m := stateRe.FindStringSubmatch(reply); m != nil {
		r.state = m[1]
	}
	for _, m := range replyMessageRe.FindAllStringSubmatch(reply, -1) {
		r.msgs = append(r.msgs, m[1])
	}
	return r
}

// userPassword is radclient's attributes for a user and a password.
func userPassword(user, password string) []string {
	return []string{fmt.Sprintf("User-Name=%q", user), fmt.Sprintf("User-Password=%q", password)}
}
