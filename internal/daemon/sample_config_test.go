package daemon

import (
	"testing"

	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/internal/testtool"
)

// TestOptionsFromSampleConfig: the shipped radiusd.toml, loaded by the real
// loader, gives valid options with the documented defaults.
func TestOptionsFromSampleConfig(t *testing.T) {
	// Private, as make run makes it: the sample holds its secret inline.
	c, err := config.Load(testtool.SampleConfig(t, "../../radiusd.toml", 0o600))
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	o, err := authOptions(c)
	if err != nil {
		t.Fatalf("authOptions: %v", err)
	}
	if o.Skew != c.Auth.Skew || o.HashWorkers != c.Radius.Workers || o.HashQueue != c.Radius.Queue || o.HashWorkers < 1 {
		t.Fatalf("options %+v do not follow the config", o)
	}
	r, err := radiusOptions(c)
	if err != nil {
		t.Fatalf("radiusOptions: %v", err)
	}
	if len(r.Clients) != len(c.Clients) || r.QueueLen != c.Radius.Queue {
		t.Fatalf("radius options %d clients, queue %d do not follow the config", len(r.Clients), r.QueueLen)
	}
}
