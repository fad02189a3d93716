package pamhelper

import (
	"testing"

	"layeh.com/radius"
)

// FuzzVerifyResponse feeds arbitrary datagrams to the response check: it must
// never panic, and anything it accepts must carry a valid Message-Authenticator
// (which random input cannot forge).
func FuzzVerifyResponse(f *testing.F) {
	secret := []byte(testSecret)
	req := radius.New(radius.CodeAccessRequest, secret)
	good := respond(f, req, radius.CodeAccessAccept, respondOpts{})
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte{2, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		code, err := verifyResponse(b, req.Identifier, req.Authenticator, secret)
		if err == nil && (len(b) < len(good) || string(b[:len(good)]) != string(good)) {
			t.Fatalf("accepted a forged response: code %v, % x", code, b)
		}
	})
}
