package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
)

func runArgs(tb testing.TB, stdin string, args ...string) (string, string, int) {
	tb.Helper()
	var out, errb bytes.Buffer
	code := Run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestRun_TokenHash(t *testing.T) {
	out, _, code := runArgs(t, "s3cret\n", "token", "hash")
	if code != 0 || strings.TrimSpace(out) != "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0" {
		t.Fatalf("code %d out %q", code, out)
	}
	if _, _, code := runArgs(t, "", "token", "hash"); code != 1 {
		t.Errorf("empty stdin: code %d", code)
	}
}

func TestRun_ExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"nope"}, 2},
		{[]string{"servers", "rm"}, 2},
		{[]string{"servers", "put", "x"}, 2},
		{[]string{"events", "--from", "nats://127.0.0.1:1"}, 2},
		{[]string{"servers", "put", "x", "-f", "f", "--data", "d"}, 2},
		{[]string{"--help"}, 0},
		{[]string{"servers", "list", "--url", "http://127.0.0.1:1"}, 1},
		{[]string{"verify", "--data", t.TempDir()}, 1},
	} {
		if _, errOut, code := runArgs(t, "", c.args...); code != c.code {
			t.Errorf("%v: code %d, want %d (%s)", c.args, code, c.code, errOut)
		}
	}
}

func TestCopySSE_WritesOneLinePerEvent(t *testing.T) {
	in := ": heartbeat\n\nid: 1\ndata: {\"a\":1}\n\ndata: {\"b\":2}\n\n"
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if _, err := copySSE(strings.NewReader(in), w); err != nil {
		t.Fatal(err)
	}
	if out.String() != "{\"a\":1}\n{\"b\":2}\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestMain_RunServeAndClose(t *testing.T) {
	// given a config with one dead server and a temp data directory
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		MCPServers: map[string]domain.ServerConfig{"dead": {Type: "sse", URL: "http://127.0.0.1:1/sse", InitTimeoutMS: 2000}}}
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: discardLogger()}
	ctx := context.Background()
	// when it runs
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(ctx) })
	base := "http://" + m.Addr()
	// then /healthz answers at once and /readyz once the dead server's inspection failed
	if code := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for get(t, base+"/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// and /readyz says why, with the relay's lag
	if ready := getBody(t, base+"/readyz"); !strings.Contains(ready, `"inspection":"done"`) ||
		!strings.Contains(ready, `"relayLagEvents":`) || !strings.Contains(ready, `"relay":"relay:inprocess"`) {
		t.Errorf("readyz detail: %s", ready)
	}
	body := getBody(t, base+"/metrics")
	for _, want := range []string{"mcpes_store_append_seconds", "mcpes_inspections_total{class=\"unreachable\",result=\"failed\"} 1",
		"mcpes_relay_lag_events", "mcpes_connections{state=\"alive\"} 0", "mcpes_ready 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// and Close stops it, after which the data directory can be opened offline
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := openData(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if pos, _, err := st.LoadSnapshot(ctx, "servers"); err != nil || pos == 0 {
		t.Errorf("servers snapshot at %d: %v", pos, err)
	}
}

func TestMain_SnapshotsPeriodicallyWhileRunning(t *testing.T) {
	// given a running service whose log moves (the dead server's inspection is recorded)
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		MCPServers: map[string]domain.ServerConfig{"dead": {Type: "sse", URL: "http://127.0.0.1:1/sse", InitTimeoutMS: 2000}}}
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: discardLogger(), SnapshotInterval: 20 * time.Millisecond}
	ctx := context.Background()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(ctx) })
	// when time passes, without any shutdown
	// then a snapshot at the projection's current position is stored while it runs
	deadline := time.Now().Add(20 * time.Second)
	for {
		head, _, err := m.store.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pos, _, err := m.store.LoadSnapshot(ctx, "servers")
		if err == nil && pos > 0 && pos == head && m.registry.IsReady() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at head %d while running (snapshot at %d, err %v)", head, pos, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMain_RefusesNonLoopbackWithoutTokens(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir(), Listen: "0.0.0.0:0"}
	cfg.SetDefaults()
	t.Setenv("MCPES_ADMIN_TOKEN", "")
	err := (&Main{Config: cfg, Logger: discardLogger()}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("err = %v", err)
	}
}

func get(tb testing.TB, url string) int {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getBody(tb testing.TB, url string) string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
