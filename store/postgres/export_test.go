package postgres

import "context"

// SweepPasswordBackoff runs the heartbeat's sweep now.
func (db *DB) SweepPasswordBackoff(ctx context.Context) (int64, error) {
	return db.sweepPasswordBackoff(ctx)
}
