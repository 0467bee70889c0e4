package config_test

import (
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
)

func TestLoad_MaxMessageBytes(t *testing.T) {
	for _, c := range []struct {
		yaml    string
		want    int64
		problem string
	}{
		{"mcpServers: {}", 16 << 20, ""},
		{"connections: {maxMessageBytes: 1048576}", 1 << 20, ""},
		{"connections: {maxMessageBytes: 1073741824}", 1 << 30, ""},
		{"connections: {maxMessageBytes: 100}", 0, "connections.maxMessageBytes: want 1024 to 1073741824 bytes, got 100"},
		{"connections: {maxMessageBytes: -5}", 0, "connections.maxMessageBytes"},
		{"connections: {maxMessageBytes: 1073741825}", 0, "connections.maxMessageBytes"},
		{"connections: {maxMessageBytes: 16MiB}", 0, "maxMessageBytes"},
	} {
		// given a config with (or without) connections.maxMessageBytes
		path := writeFile(t, c.yaml+"\n")
		// when loaded
		cfg, _, err := config.Load(path)
		// then the default is 16 MiB, and a value out of range names the field
		if c.problem != "" {
			if err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("%q: err %v, want a problem naming %s", c.yaml, err, c.problem)
			}
			continue
		}
		if err != nil || cfg.Connections.MaxMessageBytes != c.want {
			t.Errorf("%q: %v, %d, want %d", c.yaml, err, cfg.Connections.MaxMessageBytes, c.want)
		}
	}
}
