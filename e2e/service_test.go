package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mcpes/mcpes/internal/testnats"
)

func configEvents(evs []map[string]any) int {
	return countType(evs, "mcpes.server.registered.") + countType(evs, "mcpes.server.config_changed.") +
		countType(evs, "mcpes.server.removed.")
}

func serverNames(tb testing.TB, body []byte) []string {
	tb.Helper()
	var ans struct {
		Servers []struct {
			Name    string `json:"name"`
			Version uint64 `json:"position"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		tb.Fatalf("servers answer %s: %v", body, err)
	}
	var out []string
	for _, s := range ans.Servers {
		out = append(out, fmt.Sprintf("%s@%d", s.Name, s.Version))
	}
	return out
}

func TestRestart_KeepsEverythingAndWritesNoConfigEvents(t *testing.T) {
	t.Parallel()
	// given a service with the config file's server and one owner server put through the API
	cfg := writeConfig(t, baseConfig())
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: cfg})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/notes?owner=alice", adminToken,
		[]byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	appBefore := serverNames(t, svc.mustCall(200, "GET", "/v1/servers", adminToken, nil))
	aliceBefore := serverNames(t, svc.mustCall(200, "GET", "/v1/servers", aliceToken, nil))
	before := svc.events(adminToken)
	svc.stop(syscall.SIGTERM)

	// when it restarts on the same data directory with the same file
	svc2 := startService(t, serveOpts{config: cfg, data: svc.data})
	svc2.waitReady()

	// then every server is still there at the same version and no config event was written
	after := svc2.events(adminToken)
	if got, want := configEvents(after), configEvents(before); got != want {
		t.Errorf("config events after restart = %d, want %d (no duplicates)", got, want)
	}
	if len(after) < len(before) {
		t.Errorf("log shrank from %d to %d events", len(before), len(after))
	}
	for i, e := range before {
		if after[i]["id"] != e["id"] {
			t.Fatalf("event %d changed across restart", i+1)
		}
	}
	if got := serverNames(t, svc2.mustCall(200, "GET", "/v1/servers", adminToken, nil)); strings.Join(got, ",") != strings.Join(appBefore, ",") {
		t.Errorf("app servers %v, want %v", got, appBefore)
	}
	if got := serverNames(t, svc2.mustCall(200, "GET", "/v1/servers", aliceToken, nil)); strings.Join(got, ",") != strings.Join(aliceBefore, ",") {
		t.Errorf("alice's servers %v, want %v", got, aliceBefore)
	}
}

func TestIsolation_OwnersSeeOnlyTheirOwn(t *testing.T) {
	t.Parallel()
	// given alice's private server (and the app clock)
	clockURL, _ := startClockHTTP(t)
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/notes", aliceToken, []byte(`{"type":"streamable-http","url":"`+clockURL+`"}`))
	svc.call("POST", "/v1/connections/notes", aliceToken, nil)

	// when bob (an owner) reaches for it, by name or with ?owner=alice
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/servers/notes"},
		{"GET", "/v1/servers/notes?owner=alice"},
		{"DELETE", "/v1/servers/notes"},
		{"DELETE", "/v1/servers/notes?owner=alice"},
		{"POST", "/v1/servers/notes/reinspect?owner=alice"},
		{"POST", "/v1/connections/notes?owner=alice"},
		{"DELETE", "/v1/connections/notes?owner=alice"},
		{"POST", "/v1/audit/verify"},
	} {
		status, b := svc.call(c.method, c.path, bobToken, nil)
		// then every answer is 404: bob cannot even tell that alice's server exists
		if status != 404 {
			t.Errorf("bob %s %s: status %d, want 404: %s", c.method, c.path, status, b)
		}
	}
	for _, path := range []string{"/v1/servers", "/v1/servers?owner=alice", "/v1/connections?owner=alice",
		"/v1/events?limit=10000", "/v1/audit/explain?owner=alice&server=notes"} {
		b := svc.mustCall(200, "GET", path, bobToken, nil)
		if strings.Contains(string(b), "user:alice") || strings.Contains(string(b), "conn/alice/") || strings.Contains(string(b), clockURL) {
			t.Errorf("bob GET %s shows alice's data: %s", path, b)
		}
	}
	// a PUT by bob with ?owner=alice acts for bob (an owner token ignores ?owner)
	svc.mustCall(201, "PUT", "/v1/servers/notes?owner=alice", bobToken, []byte(`{"type":"sse","url":"http://127.0.0.1:1/sse"}`))
	// and alice's server is intact
	if b := svc.mustCall(200, "GET", "/v1/servers/notes", aliceToken, nil); !strings.Contains(string(b), clockURL) {
		t.Errorf("alice's server changed: %s", b)
	}

	// while the admin sees and reaches it with ?owner=alice
	if b := svc.mustCall(200, "GET", "/v1/servers?owner=alice", adminToken, nil); !strings.Contains(string(b), `"notes"`) {
		t.Errorf("admin list for alice lacks notes: %s", b)
	}
	svc.mustCall(200, "GET", "/v1/servers/notes?owner=alice", adminToken, nil)
	if b := svc.mustCall(200, "GET", "/v1/events?limit=10000", adminToken, nil); !strings.Contains(string(b), "server/user:alice/notes") {
		t.Errorf("admin events lack alice's stream")
	}
	if b := svc.mustCall(200, "GET", "/v1/audit/explain?owner=alice&server=notes", adminToken, nil); !strings.Contains(string(b), `"found":true`) {
		t.Errorf("admin explain for alice: %s", b)
	}
	// and without a token nobody gets in
	if status, _ := svc.call("GET", "/v1/servers", "", nil); status != 401 {
		t.Errorf("no token: status %d, want 401", status)
	}
}

func TestRefusals_BadInputWritesNoEvent(t *testing.T) {
	t.Parallel()
	t.Run("malformed config file", func(t *testing.T) {
		// given a config file with two bad servers
		bad := writeConfig(t, "mcpServers:\n  a:\n    type: carrier-pigeon\n  b:\n    url: ftp://x/\nlisten: [1]\n")
		data := filepath.Join(t.TempDir(), "data")
		// when serve starts with it
		res := runCLI(t, nil, "", "serve", "--config", bad, "--data", data, "--listen", fmt.Sprintf("127.0.0.1:%d", testnats.FreePort(t)))
		// then it exits 1 naming every problem with its line, and writes nothing
		if res.code != 1 {
			t.Fatalf("serve with a bad config: %s", res)
		}
		for _, want := range []string{"line 3:", "server a, field type", "line 5:", "server b, field url", "listen"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("error lacks %q:\n%s", want, res.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(data, "mcpes.db")); err == nil {
			t.Errorf("a store was created for a refused config")
		}
	})

	t.Run("bad API bodies", func(t *testing.T) {
		svc := startService(t, serveOpts{config: writeConfig(t, baseConfig())})
		svc.waitReady()
		before := len(svc.events(adminToken))
		for _, c := range []struct {
			name, token, body string
			status            int
			says              string
		}{
			{"malformed JSON", aliceToken, `{"url": `, 400, ""},
			{"not an object", aliceToken, `[1,2]`, 400, ""},
			{"oversized", aliceToken, `{"url":"http://127.0.0.1:1/mcp","description":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
			{"stdio from an owner", aliceToken, `{"command":"/bin/sh","args":["-c","id"]}`, 400, "stdio"},
			{"placeholder from an owner", aliceToken, `{"url":"http://127.0.0.1:1/mcp","headers":{"A":"${HOME}"}}`, 400, "placeholder"},
			{"stdio for an owner by the admin", adminToken, `{"command":"/bin/sh"}`, 400, "stdio"},
		} {
			path := "/v1/servers/x"
			if c.token == adminToken {
				path += "?owner=alice"
			}
			status, b := svc.call("PUT", path, c.token, []byte(c.body))
			if status != c.status || !strings.Contains(string(b), `"error"`) || !strings.Contains(string(b), c.says) {
				t.Errorf("%s: status %d, want %d with %q: %.300s", c.name, status, c.status, c.says, b)
			}
		}
		// the CLI refuses a malformed file before sending anything
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("url: [\n"), 0o600)
		res := runCLI(t, []string{"MCPES_URL=" + svc.url, "MCPES_TOKEN=" + aliceToken}, "", "servers", "put", "x", "-f", bad)
		if res.code != 1 || !strings.Contains(res.stderr, "line") {
			t.Errorf("servers put with a malformed file: %s", res)
		}
		if after := len(svc.events(adminToken)); after != before {
			t.Errorf("refused requests wrote %d events", after-before)
		}
	})
}

func TestCLI_UsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"bogus"}, {"servers", "list", "--bogus"}, {"servers", "put"}, {"explain", "--server", "x"},
		{"replay", "--until", "yesterday"}} {
		if res := runCLI(t, nil, "", args...); res.code != 2 {
			t.Errorf("mcpes %v: %s", args, res)
		}
	}
	for _, args := range [][]string{{"--help"}, {"events", "--help"}, {"servers", "put", "--help"}} {
		if res := runCLI(t, nil, "", args...); res.code != 0 || !strings.Contains(res.stdout, "Usage:") {
			t.Errorf("mcpes %v: %s", args, res)
		}
	}
}
