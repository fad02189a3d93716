package config

import (
	"slices"
	"strings"
)

// Keys returns the path of every key radiusd.toml accepts, in the order of
// Config's fields, tables left out: "version", "radius.listen", and
// "client.name" for the name of every [[client]]. It is the list Load
// checks a file against (derived from Config's toml tags), so tests can hold
// the documentation of the keys to it.
func Keys() []string {
	var keys []string
	for _, k := range knownKeys {
		isTable := slices.ContainsFunc(knownKeys, func(other string) bool {
			return strings.HasPrefix(other, k+".")
		})
		if !isTable {
			keys = append(keys, k)
		}
	}
	return keys
}
