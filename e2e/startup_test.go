package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpes/mcpes/internal/testnats"
)

// hangingServer accepts TCP connections and never answers: an MCP server that hangs
// on initialize.
func hangingServer(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return fmt.Sprintf("http://%s/mcp", ln.Addr())
}

func TestStartup_HealthzAtOnceReadyzAfterInspection(t *testing.T) {
	t.Parallel()
	// given a config whose second server hangs on initialize (initTimeout 3s)
	hang := hangingServer(t)
	cfg := writeConfig(t, baseConfigWith(fmt.Sprintf(`  hanging:
    type: streamable-http
    url: %s
    initTimeout: 3000
`, hang)))
	// when the service starts
	start := time.Now()
	svc := startService(t, serveOpts{config: cfg})
	// then /healthz answers at once while /readyz waits for the inspections
	if code, _ := svc.call("GET", "/readyz", "", nil); code != 503 {
		t.Errorf("readyz right after start: %d, want 503", code)
	}
	svc.waitReady()
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("ready after %s, before the hanging server's 3s initTimeout", took)
	}
	// and the hanging server is a failed stub (timeout), the clock is ready
	b := svc.mustCall(200, "GET", "/v1/servers/hanging", adminToken, nil)
	if !strings.Contains(string(b), `"inspectionFailed":true`) || !strings.Contains(string(b), "timeout") {
		t.Errorf("hanging server: %s", b)
	}
	b = svc.mustCall(200, "GET", "/v1/servers/clock", adminToken, nil)
	if !strings.Contains(string(b), `"inspected":true`) || strings.Contains(string(b), `"inspectionFailed":true`) {
		t.Errorf("clock: %s", b)
	}
}

func TestServe_RefusesNonLoopbackWithoutTokens(t *testing.T) {
	t.Parallel()
	res := runCLI(t, []string{"MCPES_ADMIN_TOKEN="}, "", "serve", "--config", writeConfig(t, "mcpServers: {}\n"),
		"--data", t.TempDir(), "--listen", fmt.Sprintf("0.0.0.0:%d", testnats.FreePort(t)))
	if res.code != 1 || !strings.Contains(res.stderr, "not loopback") {
		t.Fatalf("serve on 0.0.0.0 without tokens: %s", res)
	}
}

func TestSecrets_NeverInLogsOrEvents(t *testing.T) {
	t.Parallel()
	// given a server put with a secret header and env value
	const secret = "topsecret-value-1234"
	clockURL, _ := startClockHTTP(t)
	keys := []string{testKeys}
	svc := startService(t, serveOpts{config: writeConfig(t, baseConfig()), env: keys})
	svc.waitReady()
	svc.mustCall(201, "PUT", "/v1/servers/withsecret?owner=alice", adminToken,
		[]byte(`{"type":"streamable-http","url":"`+clockURL+`","headers":{"Authorization":"Bearer `+secret+`"}}`))
	waitInspected(t, svc, "withsecret", aliceToken)
	svc.mustCall(200, "POST", "/v1/connections/withsecret", aliceToken, nil)
	// then no API answer, event or log line carries it in clear
	for _, path := range []string{"/v1/servers/withsecret?owner=alice", "/v1/servers?owner=alice", "/v1/events?limit=10000",
		"/v1/audit/explain?owner=alice&server=withsecret"} {
		if b := svc.mustCall(200, "GET", path, adminToken, nil); strings.Contains(string(b), secret) {
			t.Errorf("GET %s shows the secret: %s", path, b)
		}
	}
	svc.stop(syscall.SIGTERM)
	if strings.Contains(svc.logs.String(), secret) {
		t.Errorf("logs show the secret")
	}
	res := runCLI(t, nil, "", "export", "--data", svc.data)
	if res.code != 0 || strings.Contains(res.stdout, secret) || !strings.Contains(res.stdout, "secret:") {
		t.Errorf("export: code %d, secret in clear or no reference", res.code)
	}
	// and the data file itself holds it only encrypted
	if raw, err := os.ReadFile(filepath.Join(svc.data, "mcpes.db")); err != nil || bytes.Contains(raw, []byte(secret)) {
		t.Errorf("data file: secret in clear (read error %v)", err)
	}
	// and a restart without the key refuses, saying how to make one
	res = runCLI(t, []string{"MCPES_KEYS="}, "", "serve", "--data", svc.data, "--listen", fmt.Sprintf("127.0.0.1:%d", testnats.FreePort(t)))
	if res.code != 1 || !strings.Contains(res.stderr, "mcpes keys gen") {
		t.Errorf("serve without the key: %s", res)
	}
}

func TestSIGTERM_DuringStartupInspectionStopsPromptly(t *testing.T) {
	t.Parallel()
	// given a server that hangs on initialize with a 60s initTimeout
	cfg := writeConfig(t, baseConfigWith(fmt.Sprintf("  hanging:\n    type: streamable-http\n    url: %s\n    initTimeout: 60000\n", hangingServer(t))))
	svc := startService(t, serveOpts{config: cfg})
	// when SIGTERM arrives while it is being inspected
	start := time.Now()
	svc.stop(syscall.SIGTERM)
	// then the service stops cleanly without waiting for the inspection's timeout
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("stop took %s", took)
	}
	if res := runCLI(t, nil, "", "verify", "--data", svc.data); res.code != 0 {
		t.Errorf("verify after an interrupted startup: %s", res)
	}
}
