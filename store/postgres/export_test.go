package postgres

import (
	"context"
	"testing"
)

// SetSchemaForTest makes the nodes opened until the test ends read and
// write schema version v, as an older otpgate would.
func SetSchemaForTest(t testing.TB, v int) {
	old := currentSchema
	currentSchema = v
	t.Cleanup(func() { currentSchema = old })
}

// CurrentSchema is the schema version this program writes.
func CurrentSchema() int { return currentSchema }

// SweepPasswordBackoff runs the heartbeat's sweep now.
func (db *DB) SweepPasswordBackoff(ctx context.Context) (int64, error) {
	return db.sweepPasswordBackoff(ctx)
}

// StoredRecord is user name's record as the users table holds it.
func (db *DB) StoredRecord(ctx context.Context, name string) ([]byte, error) {
	var rec []byte
	err := db.pool.QueryRow(ctx, "SELECT record FROM users WHERE name = $1", name).Scan(&rec)
	return rec, err
}
