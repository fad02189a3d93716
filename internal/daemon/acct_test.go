package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
)

// TestAccountingListener: otpgated answers Accounting-Request on
// radius.acct_listen, writes it to the audit log and names the socket in
// its startup line.
func TestAccountingListener(t *testing.T) {
	dir := t.TempDir()
	path := writeTestConfig(t, dir, "")
	acct := fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t, "udp"))
	text := strings.Replace(mustRead(t, path), `acct_listen = ["127.0.0.1:0"]`, fmt.Sprintf("acct_listen = [%q]", acct), 1)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	logs, stop := startDaemon(t, path)
	if !strings.Contains(logs.String(), "accounting=["+acct+"]") {
		t.Errorf("the startup line does not name the accounting socket %s:\n%s", acct, logs.String())
	}

	p := radius.New(radius.CodeAccountingRequest, []byte(testSecret))
	rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType_Value_Start)
	rfc2865.UserName_SetString(p, "alice")
	rfc2866.AcctSessionID_SetString(p, "sess-42")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := radius.Exchange(ctx, p, acct) // verifies the Response Authenticator
	if err != nil {
		t.Fatalf("Accounting-Request: %v\n%s", err, logs.String())
	}
	if resp.Code != radius.CodeAccountingResponse {
		t.Fatalf("answer %v, want Accounting-Response", resp.Code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	audit := mustRead(t, filepath.Join(dir, "audit.log"))
	if !strings.Contains(audit, `"msg":"radius accounting","status":"Start","user":"alice"`) || !strings.Contains(audit, `"session_id":"sess-42"`) {
		t.Errorf("audit log lacks the accounting record:\n%s", audit)
	}
}
