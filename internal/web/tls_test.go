package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/testtool"
)

// TestListenRefusesBadKeyPair: a tls_cert or tls_key that cannot be used
// fails Listen, which otpgated calls while it starts, rather than the
// page's goroutine after the start reported success. The error names the
// files and shows nothing of the key.
func TestListenRefusesBadKeyPair(t *testing.T) {
	a, b := testtool.NewTestCA(t, t.TempDir()), testtool.NewTestCA(t, t.TempDir())
	certA, keyA, keyB := a.CertFile, a.KeyFile, b.KeyFile
	keyPEM, err := os.ReadFile(keyA)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.crt")
	tests := []struct {
		name, cert, key string
		want            []string
	}{
		{"missing cert", missing, keyA, []string{"web: tls_cert " + missing, "tls_key " + keyA, "no such file"}},
		{"mismatched pair", certA, keyB, []string{"web: tls_cert " + certA, "tls_key " + keyB, "private key does not match public key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New(nil, Options{Listen: "127.0.0.1:0", TLSCert: tt.cert, TLSKey: tt.key})
			ln, err := srv.Listen()
			if err == nil {
				ln.Close()
				t.Fatal("Listen accepted an unusable key pair")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Listen = %v\nwant it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(keyPEM[30:60])) {
				t.Errorf("the error shows key material: %v", err)
			}
		})
	}
}

// TestServeTLS: with a good key pair the page answers over TLS with the
// certificate from tls_cert.
func TestServeTLS(t *testing.T) {
	f := newFixture(t)
	ca := testtool.NewTestCA(t, t.TempDir())
	srv := New(f.local, Options{Listen: "127.0.0.1:0", TLSCert: ca.CertFile, TLSKey: ca.KeyFile})
	ln, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	}()
	caPEM, err := os.ReadFile(ca.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/enroll/nosuchtoken")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNotFound || resp.TLS == nil || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("GET over TLS = %d, TLS %v, HSTS %q; want 404 over TLS with HSTS", resp.StatusCode, resp.TLS != nil, resp.Header.Get("Strict-Transport-Security"))
	}
}
