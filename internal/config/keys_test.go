package config

import (
	"slices"
	"testing"
)

func TestKeysAreTheLeavesOfConfig(t *testing.T) {
	keys := Keys()
	for _, want := range []string{"version", "data_dir", "log.level", "radius.listen", "client.name", "client.secret_file", "auth.skew", "password.argon2_memory_kib", "metrics.listen"} {
		if !slices.Contains(keys, want) {
			t.Errorf("Keys() lacks %q", want)
		}
	}
	for _, table := range []string{"log", "radius", "client", "auth", "password", "metrics"} {
		if slices.Contains(keys, table) {
			t.Errorf("Keys() lists the table %q as a key", table)
		}
	}
	for _, hidden := range []string{"Path", "Warnings", "-"} {
		if slices.Contains(keys, hidden) {
			t.Errorf("Keys() lists %q, which is not a TOML key", hidden)
		}
	}
}
