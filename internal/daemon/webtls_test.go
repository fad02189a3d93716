package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

// TestRunBadWebKeyPairFailsStart: as selfservice.go promises, a [web]
// tls_cert or tls_key otpgated cannot use fails the start, naming the
// files, rather than leaving a running daemon without its page.
func TestRunBadWebKeyPairFailsStart(t *testing.T) {
	a, b := testtool.NewTestCA(t, t.TempDir()), testtool.NewTestCA(t, t.TempDir())
	certA, keyA, keyB := a.CertFile, a.KeyFile, b.KeyFile
	missing := filepath.Join(t.TempDir(), "missing.crt")
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
