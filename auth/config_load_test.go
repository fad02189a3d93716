package auth

import (
	"testing"

	"github.com/otpgate/otpgate/internal/config"
)

// TestOptionsFromSampleConfig: the shipped radiusd.toml, loaded by the real
// loader, gives valid options with the documented defaults.
func TestOptionsFromSampleConfig(t *testing.T) {
	c, err := config.Load("../radiusd.toml")
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	o, err := OptionsFromConfig(c)
	if err != nil {
		t.Fatalf("OptionsFromConfig: %v", err)
	}
	if o.Skew != c.Auth.Skew || o.Workers != c.Radius.Workers || o.Queue != c.Radius.Queue || o.Workers < 1 {
		t.Fatalf("options %+v do not follow the config", o)
	}
}
