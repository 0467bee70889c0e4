package main

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
)

func TestServersVars_SetFromStdinListUnset(t *testing.T) {
	// given a running service (with an encryption key for the values) and an
	// on-demand server that has a per-owner key
	t.Setenv("MCPES_KEYS", "k1:"+base64.StdEncoding.EncodeToString(make([]byte, 32)))
	_, base := runService(t, &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		MCPServers: map[string]domain.ServerConfig{"per user": {Type: "streamable-http", URL: "http://127.0.0.1:1/s/{{KEY}}/mcp",
			CustomUserVars: map[string]domain.CustomUserVar{"KEY": {Title: "Key", Description: "your key"}}}}})
	// and it is on demand, not failed: nothing connected it at startup
	if body := getBody(t, base+"/v1/servers/per%20user"); !strings.Contains(body, `"state":"on_demand"`) {
		t.Fatalf("server: %s", body)
	}

	// when alice's key is set from stdin
	out, errOut, code := runArgs(t, "s3cret-from-stdin\n", "servers", "vars", "per user", "--set", "KEY=-", "--owner", "alice", "--url", base)
	// then the listing says it is set and shows no value
	if code != 0 || !strings.Contains(out, "KEY   yes") || strings.Contains(out, "s3cret") {
		t.Fatalf("set: code %d out %q err %q", code, out, errOut)
	}
	// and the log has the name only
	if ev := getBody(t, base+"/v1/events"); !strings.Contains(ev, "vars_changed") || strings.Contains(ev, "s3cret") {
		t.Fatalf("events: %s", ev)
	}

	// when it is unset, then it is listed as not set
	out, errOut, code = runArgs(t, "", "servers", "vars", "per user", "--unset", "KEY", "--owner", "alice", "--url", base, "--json")
	if code != 0 || !strings.Contains(out, `"set": false`) {
		t.Fatalf("unset: code %d out %q err %q", code, out, errOut)
	}
	// and a bad assignment is refused before any call
	if _, errOut, code = runArgs(t, "", "servers", "vars", "per user", "--set", "KEY", "--url", base); code == 0 || !strings.Contains(errOut, "NAME=VALUE") {
		t.Fatalf("bad --set: code %d err %q", code, errOut)
	}
}
