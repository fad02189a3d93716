package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

// writeTestKeyPair writes a self-signed certificate and its key as PEM
// files in dir.
func writeTestKeyPair(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "otpgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestRunBadWebKeyPairFailsStart: as selfservice.go promises, a [web]
// tls_cert or tls_key otpgated cannot use fails the start, naming the
// files, rather than leaving a running daemon without its page.
func TestRunBadWebKeyPairFailsStart(t *testing.T) {
	keys := t.TempDir()
	certA, keyA := writeTestKeyPair(t, keys, "a")
	_, keyB := writeTestKeyPair(t, keys, "b")
	missing := filepath.Join(keys, "missing.crt")
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing cert", missing, keyA, "web: tls_cert " + missing},
		{"mismatched pair", certA, keyB, "private key does not match public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			port := testtool.FreePort(t, "tcp")
			cfgPath := writeTestConfig(t, dir, fmt.Sprintf("[web]\nlisten = \"127.0.0.1:%d\"\npublic_url = \"https://127.0.0.1:%[1]d\"\ntls_cert = %q\ntls_key = %q\n", port, tt.cert, tt.key))
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() { done <- RunWithOptions(ctx, Options{ConfigPath: cfgPath, Ready: ready}) }()
			select {
			case <-ready:
				cancel()
				<-done
				t.Fatal("otpgated started with an unusable web key pair")
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Run = %v, want an error containing %q", err, tt.want)
				}
			}
			if _, err := os.Lstat(cfg.SocketPath()); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed start left a socket: %v", err)
			}
		})
	}
}
