package config_test

import (
	"testing"

	"github.com/mcpes/mcpes/config"
)

// TestLoad_ExampleConfig keeps examples/mcpes.yaml loadable without warnings.
func TestLoad_ExampleConfig(t *testing.T) {
	cfg, warns, err := config.Load("../examples/mcpes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if len(cfg.MCPServers) != 3 || cfg.MCPServers["clock-on-demand"].StartupEnabled() {
		t.Errorf("servers = %+v", cfg.MCPServers)
	}
	if _, _, err := config.ParseServer(mustRead(t, "../examples/clock-v2.yaml"), "clock-v2.yaml"); err != nil {
		t.Fatal(err)
	}
}
