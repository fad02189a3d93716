package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/auth"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/store"
	"github.com/otpgate/otpgate/store/postgres"
)

// readyProbeEvery is how often a node on PostgreSQL checks that it can
// write, for Status-Server.
const readyProbeEvery = time.Second

// The wiring finds what PostgreSQL shares between nodes by a type
// assertion; these make a signature that drifts a build error, not a
// cluster that silently keeps States and backoff per node.
var (
	_ auth.StateStore           = (*postgres.DB)(nil)
	_ auth.PasswordBackoffStore = (*postgres.DB)(nil)
)

// openedStore is the configured backend and, for PostgreSQL, whether it
// can decide a login now.
type openedStore struct {
	store.Store
	ready func() bool // nil: always (embedded bbolt)
	stop  func()
}

// openStore opens [store] backend: bbolt in data_dir, or PostgreSQL.
func openStore(cfg *config.Config, log *slog.Logger) (*openedStore, error) {
	if !cfg.Store.Postgres() {
		st, err := store.Open(cfg.DBPath(), store.Options{KeyFile: cfg.KeyPath(), Log: log})
		if err != nil {
			return nil, err
		}
		return &openedStore{Store: st, stop: func() {}}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, cfg.Store.DSN, postgres.Options{KeyFile: cfg.KeyPath(), Log: log})
	if err != nil {
		if errors.Is(err, store.ErrWrongKey) {
			return nil, fmt.Errorf("refusing to start: %w", err)
		}
		return nil, err
	}
	var ok atomic.Bool
	ok.Store(true)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(readyProbeEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), readyProbeEvery)
				err := db.Ping(ctx)
				cancel()
				if was := ok.Swap(err == nil); was != (err == nil) {
					if err != nil {
						log.Warn("store: PostgreSQL cannot take writes; logins are dropped (the NAS fails over) and Status-Server goes unanswered until it can", "err", err)
					} else {
						log.Info("store: PostgreSQL answers again; logins resume")
					}
				}
			}
		}
	}()
	return &openedStore{Store: db, ready: ok.Load, stop: func() { close(done) }}, nil
}

// Close stops the probe and closes the store.
func (s *openedStore) Close() error {
	s.stop()
	return s.Store.Close()
}
