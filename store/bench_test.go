package store

import (
	"context"
	"errors"
	"testing"
)

func BenchmarkUpdateLastStep(b *testing.B) {
	ctx := context.Background()
	db, _ := testDB(b)
	if err := db.Create(ctx, totpUser("alice", newSeed())); err != nil {
		b.Fatal(err)
	}
	step := uint64(0)
	for b.Loop() {
		step++
		err := db.UpdateLogin(ctx, "alice", func(u *User) error {
			if step <= u.TOTP.LastStep {
				return errCodeReused
			}
			u.TOTP.LastStep = step
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	db, _ := testDB(b)
	if err := db.Import(ctx, manyUsers(b, "user", 10_000)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.Get(ctx, "user005000"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetMissing(b *testing.B) {
	ctx := context.Background()
	db, _ := testDB(b)
	for b.Loop() {
		if _, err := db.Get(ctx, "nobody"); !errors.Is(err, ErrUserNotFound) {
			b.Fatal(err)
		}
	}
}

// BenchmarkImport100k imports 100,000 OTP-only users with seeds into a new
// database per iteration; ns/op is the time for the whole batch.
func BenchmarkImport100k(b *testing.B) {
	ctx := context.Background()
	users := manyUsers(b, "user", 100_000)
	for b.Loop() {
		b.StopTimer()
		db, _ := testDB(b)
		b.StartTimer()
		if err := db.Import(ctx, users); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
}
