package config_test

import (
	"errors"
	"testing"

	"github.com/mcpes/mcpes/config"
)

// FuzzLoadConfig feeds arbitrary bytes to the parser: it must never panic, and it
// returns either a valid config or an *Error (nothing half-applied).
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("mcpServers:\n  clock:\n    command: ./bin/clock\n    initTimeout: 90000\n"))
	f.Add([]byte("mcpServers:\n  r:\n    type: sse\n    url: http://127.0.0.1:1/sse\n    headers: {A: \"${X}\"}\n"))
	f.Add([]byte("auth:\n  tokens:\n    - {sha256: abc, role: owner, owner: bob}\nlisten: 0.0.0.0:1\n"))
	f.Add([]byte("connections: {idleTimeout: 1h, breaker: {failures: 2, openDuration: 5s}}\n"))
	f.Add([]byte("a: &x [1, *x]\n"))
	f.Add([]byte("mcpServers: {x: {command: [1], args: {a: b}, startup: maybe}}\n"))
	f.Add([]byte("- 1\n---\n- 2\n"))
	f.Add([]byte("mcpServers:\n  x: !!binary aGVsbG8=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := config.Parse(data, "fuzz.yaml")
		if err != nil {
			var ce *config.Error
			if cfg != nil || !errors.As(err, &ce) && !errors.Is(err, config.ErrTooLarge) {
				t.Fatalf("cfg=%v err=%T %v", cfg, err, err)
			}
			if ce != nil && len(ce.Problems) == 0 {
				t.Fatal("an *Error with no problems")
			}
			return
		}
		if cfg.Validate() != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", cfg.Validate())
		}
	})
}

// FuzzParseServer feeds arbitrary bytes to the one-server parser of `servers put -f`.
func FuzzParseServer(f *testing.F) {
	f.Add([]byte("type: streamable-http\nurl: http://127.0.0.1:9/mcp\nheaders: {X: y}\n"))
	f.Add([]byte(`{"command":"x","args":["a"],"env":{"A":"b"},"startup":false}`))
	f.Add([]byte("timeout: soon\n"))
	f.Add([]byte("[1, 2]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := config.ParseServer(data, "fuzz.yaml")
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) && !errors.Is(err, config.ErrTooLarge) {
				t.Fatalf("err=%T %v", err, err)
			}
			return
		}
		if _, err := cfg.MarshalJSON(); err != nil {
			t.Fatalf("parsed config does not encode: %v", err)
		}
	})
}
