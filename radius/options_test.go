package radius

import (
	"strings"
	"testing"
	"time"
)

// TestOptionsRefused: New fills in no defaults; it refuses what would not
// work, naming the option, and so do Validate and (for what it changes)
// Reload.
func TestOptionsRefused(t *testing.T) {
	tests := []struct {
		name     string
		mut      func(*Options)
		want     string
		reloadOK bool // Reload ignores the option
	}{
		{"zero", func(o *Options) { *o = Options{} }, "Options.", false},
		{"reply cache TTL", func(o *Options) { o.ReplyCacheTTL = 0 }, "ReplyCacheTTL", false},
		{"reply cache size", func(o *Options) { o.ReplyCacheMaxEntries = 0 }, "ReplyCacheMaxEntries", false},
		{"reject delay", func(o *Options) { o.RejectDelay = -time.Second }, "RejectDelay", false},
		{"handlers", func(o *Options) { o.Handlers = 0 }, "Handlers", true},
		{"queue", func(o *Options) { o.QueueLen = 0 }, "QueueLen", true},
		{"client mode", func(o *Options) { o.Clients[0].Mode = "" }, "mode is empty", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			tc.mut(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error naming %q", err, tc.want)
			}
			if _, err := New(o, &fakeAuth{}, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error naming %q", err, tc.want)
			}
			s, err := New(testOptions(), &fakeAuth{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Reload(o); (err == nil) != tc.reloadOK {
				t.Errorf("Reload: %v, want ok = %v", err, tc.reloadOK)
			}
		})
	}
	if err := testOptions().Validate(); err != nil {
		t.Fatalf("testOptions: %v", err)
	}
}
