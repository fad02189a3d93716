package upstream

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// serve answers Access-Requests for alice/alicepw with Accept, others with
// Reject, each with a Message-Authenticator unless withMA is false.
func serve(t *testing.T, secret []byte, withMA bool) string {
	t.Helper()
	return serveUsers(t, secret, withMA, func(user, pw string) bool { return user == "alice" && pw == "alicepw" })
}

// serveUsers is serve with the server's accounts: accept tells the
// User-Names and passwords it accepts.
func serveUsers(t *testing.T, secret []byte, withMA bool, accept func(user, pw string) bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &radius.PacketServer{SecretSource: radius.StaticSecretSource(secret), Handler: radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
		if !validMessageAuthenticator(r.Packet, r.Authenticator, secret) {
			t.Error("request without a valid Message-Authenticator")
			return
		}
		code := radius.CodeAccessReject
		if accept(rfc2865.UserName_GetString(r.Packet), rfc2865.UserPassword_GetString(r.Packet)) {
			code = radius.CodeAccessAccept
		}
		resp := r.Response(code)
		if withMA {
			resp.Attributes = append(radius.Attributes{{Type: rfc2869.MessageAuthenticator_Type, Attribute: make([]byte, 16)}}, resp.Attributes...)
			c := *resp
			c.Authenticator = r.Authenticator
			b, _ := c.MarshalBinary()
			resp.Attributes[0].Attribute = messageAuthenticator(b, secret)
		}
		_ = w.Write(resp)
	})}
	go func() { _ = srv.Serve(pc) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return pc.LocalAddr().String()
}

func TestCheck(t *testing.T) {
	secret := []byte("upstream-secret-0123456789")
	good := serve(t, secret, true)
	noMA := serve(t, secret, false)
	down := "127.0.0.1:9" // discard: nothing answers
	for _, tt := range []struct {
		name     string
		servers  []string
		user, pw string
		ok       bool
		wantErr  bool
	}{
		{"accept", []string{good}, "alice", "alicepw", true, false},
		{"reject", []string{good}, "alice", "wrong", false, false},
		{"empty password is never sent", []string{down}, "alice", "", false, false},
		{"failover", []string{down, good}, "alice", "alicepw", true, false},
		{"answer without Message-Authenticator", []string{noMA}, "alice", "alicepw", false, true},
		{"all down", []string{down}, "alice", "alicepw", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Servers: tt.servers, Secret: secret, Timeout: 300 * time.Millisecond, NASIdentifier: "otpgate"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Check(context.Background(), tt.user, tt.pw)
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if res.OK != tt.ok {
				t.Errorf("OK = %v, want %v", res.OK, tt.ok)
			}
		})
	}
}
