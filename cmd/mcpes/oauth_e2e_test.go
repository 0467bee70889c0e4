package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/oauth/oauthtest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func call(tb testing.TB, method, url, token string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if loc := resp.Header.Get("Location"); loc != "" {
		return resp.StatusCode, loc
	}
	return resp.StatusCode, string(b)
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// gatewayClient is alice's MCP client of /mcp; urlElicitation declares URL elicitation.
func gatewayClient(tb testing.TB, base, token string, urlElicitation bool) *client.Client {
	tb.Helper()
	tp, err := transport.NewStreamableHTTP(base+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		tb.Fatal(err)
	}
	c := client.NewClient(tp, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "alice", Version: "1"}
	if urlElicitation {
		in.Params.Capabilities.Elicitation = &mcp.ElicitationCapability{URL: &struct{}{}}
	}
	if _, err := c.Initialize(ctx, in); err != nil {
		tb.Fatal(err)
	}
	return c
}

func whoami(tb testing.TB, c *client.Client) (*mcp.CallToolResult, error) {
	tb.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = "gh__whoami"
	req.Params.Arguments = map[string]any{}
	return c.CallTool(context.Background(), req)
}

func resultText(r *mcp.CallToolResult) string {
	if r == nil || len(r.Content) == 0 {
		return ""
	}
	return mcp.GetTextFromContent(r.Content[0])
}

func TestOAuth_EndToEnd_AuthorizeCallRefreshRevoke(t *testing.T) {
	ctx := context.Background()
	// given an MCP server that answers nothing without a token, registered as an app
	// server (its 401 at startup marks it as needing OAuth), and alice's and bob's tokens
	as := oauthtest.Start(t)
	key, _ := credentials.GenerateKey("k1")
	t.Setenv(credentials.EnvKeys, key)
	const aliceTok, bobTok, adminTok = "alice-api-token-0123456789", "bob-api-token-0123456789", "admin-api-token-0123456789"
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		Auth: config.Auth{Tokens: []config.Token{{SHA256: handlers.HashToken(aliceTok), Role: config.RoleOwner, Owner: "alice"},
			{SHA256: handlers.HashToken(bobTok), Role: config.RoleOwner, Owner: "bob"},
			{SHA256: handlers.HashToken(adminTok), Role: config.RoleAdmin}}},
		MCPServers: map[string]domain.ServerConfig{"gh": {Type: "streamable-http", URL: as.URL + "/mcp", InitTimeoutMS: 10000}}}
	cfg.SetDefaults()
	logs := &lockedBuffer{}
	m := &Main{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = m.Close(ctx)
		}
	})
	base := "http://" + m.Addr()
	for deadline := time.Now().Add(20 * time.Second); get(t, base+"/readyz") != 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}

	if _, body := call(t, "GET", base+"/v1/servers/gh", adminTok); !strings.Contains(body, `"requiresOAuth":true`) {
		t.Fatalf("gh not marked as needing OAuth: %s", body)
	}
	if code, body := call(t, "POST", base+"/v1/connections/gh", aliceTok); code != 403 || !strings.Contains(body, string(domain.RuleNoGrant)) {
		t.Fatalf("connect without grant: %d %s", code, body)
	}

	// when alice authorizes through the returned URL (the AS redirects at once)
	code, body := call(t, "POST", base+"/v1/servers/gh/authorize", aliceTok)
	var ar handlers.AuthorizeResponse
	if code != 200 || json.Unmarshal([]byte(body), &ar) != nil {
		t.Fatalf("authorize: %d %s", code, body)
	}
	code, loc := call(t, "GET", ar.URL, "")
	if code != http.StatusFound || !strings.HasPrefix(loc, base+handlers.CallbackPath+"?") {
		t.Fatalf("authorization endpoint: %d %s", code, loc)
	}
	if code, body := call(t, "GET", loc, ""); code != 200 || !strings.Contains(body, "Authorized") {
		t.Fatalf("callback: %d %s", code, body)
	}
	// and the callback cannot be used twice
	if code, _ := call(t, "GET", loc, ""); code != 400 {
		t.Fatalf("second callback: %d", code)
	}
	// then mcpes inspects gh with her grant, /mcp offers its tools, and her call goes
	// through with her token
	plain := gatewayClient(t, base, aliceTok, false)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tools, err := plain.ListTools(ctx, mcp.ListToolsRequest{})
		if err == nil && len(tools.Tools) > 0 && slices.ContainsFunc(tools.Tools, func(tl mcp.Tool) bool { return tl.Name == "gh__whoami" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gh__whoami never offered: %v", err)
		}
	}
	res, err := whoami(t, plain)
	if err != nil || res.IsError || resultText(res) != "authorized" {
		t.Fatalf("authorized call: %v %q", err, resultText(res))
	}

	// when bob, who has not authorized, calls the same tool, then he gets the link
	res, err = whoami(t, gatewayClient(t, base, bobTok, false))
	if err != nil || !res.IsError || !strings.Contains(resultText(res), as.URL+"/authorize?") {
		t.Fatalf("bob's call: %v %q", err, resultText(res))
	}
	// and a client of his that declared URL elicitation gets -32042 with the URL
	_, err = whoami(t, gatewayClient(t, base, bobTok, true))
	var need mcp.URLElicitationRequiredError
	if !errors.As(err, &need) || len(need.Elicitations) != 1 || !strings.HasPrefix(need.Elicitations[0].URL, as.URL+"/authorize?") {
		t.Fatalf("bob's elicitation client: %v", err)
	}

	// when the access token expires, then the next call refreshes it and succeeds
	as.Expire()
	res, err = whoami(t, plain)
	if err != nil || resultText(res) != "authorized" || as.RefreshRequests.Load() != 1 || as.FamilyRevoked() {
		t.Fatalf("call after expiry: %v %q, %d refreshes", err, resultText(res), as.RefreshRequests.Load())
	}

	// when alice authorizes again, then her open connection (on the old grant) is
	// stale: evicted and rebuilt on the new one, and recorded so
	// (this time through the CLI: `mcpes authorize gh` with alice's token)
	t.Setenv("MCPES_TOKEN", aliceTok)
	authorizeAlice := func() {
		t.Helper()
		out, stderr, code := runArgs(t, "", "--url", base, "authorize", "gh")
		if code != 0 || !strings.HasPrefix(out, as.URL+"/authorize?") {
			t.Fatalf("mcpes authorize: %q %q %d", out, stderr, code)
		}
		_, loc := call(t, "GET", strings.TrimSpace(out), "")
		if code, body := call(t, "GET", loc, ""); code != 200 {
			t.Fatalf("callback: %d %s", code, body)
		}
	}
	authorizeAlice()
	res, err = whoami(t, plain)
	if err != nil || resultText(res) != "authorized" {
		t.Fatalf("call after re-authorization: %v %q", err, resultText(res))
	}
	if _, evs := call(t, "GET", base+"/v1/events?type=mcpes.connection.evicted.v1", adminTok); !strings.Contains(evs, `"reason":"stale"`) {
		t.Errorf("no stale eviction after re-authorization: %s", evs)
	}
	if _, ex := call(t, "GET", base+"/v1/audit/explain?owner=alice&server=gh", adminTok); !strings.Contains(ex, `"mayConnect":true`) ||
		!strings.Contains(ex, `"held":true`) {
		t.Errorf("explain while authorized: %s", ex)
	}

	// when alice revokes, then the AS is told and her open connection is evicted
	code, body = call(t, "DELETE", base+"/v1/servers/gh/authorization", aliceTok)
	if code != 200 || !strings.Contains(body, `"authorizationServerNotified":true`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	res, err = whoami(t, plain)
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "/authorize?") {
		t.Fatalf("call after revocation: %v %q", err, resultText(res))
	}
	if code, _ := call(t, "DELETE", base+"/v1/servers/gh/authorization", aliceTok); code != 404 {
		t.Errorf("second revoke: %d, want 404", code)
	}
	if _, stderr, code := runArgs(t, "", "--url", base, "authorize", "gh", "--revoke"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Errorf("mcpes authorize --revoke without a grant: %q %d", stderr, code)
	}
	_, evs := call(t, "GET", base+"/v1/events?limit=10000", adminTok)
	for _, want := range []string{"mcpes.oauth.flow_started.v1", "mcpes.oauth.completed.v1", "mcpes.token.refreshed.v1",
		"mcpes.token.revoked.v1", `"reason":"disallowed"`, `"rule":"oauth_grant_missing"`} {
		if !strings.Contains(evs, want) {
			t.Errorf("events lack %s", want)
		}
	}
	// and explain says why alice cannot reach it now, and verify re-derives every decision
	_, explain := call(t, "GET", base+"/v1/audit/explain?owner=alice&server=gh", adminTok)
	if !strings.Contains(explain, `"mayConnect":false`) || !strings.Contains(explain, `"rule":"oauth_grant_missing"`) ||
		!strings.Contains(explain, "revoked (owner)") {
		t.Errorf("explain: %s", explain)
	}
	if code, body := call(t, "POST", base+"/v1/audit/verify", adminTok); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Errorf("verify: %d %s", code, body)
	}

	// and no token appears in clear in events, explain, logs, the export or the data file
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	closed = true
	export, _, _ := runArgs(t, "", "export", "--data", cfg.DataDir)
	raw, err := os.ReadFile(dbPath(cfg.DataDir))
	if err != nil {
		t.Fatal(err)
	}
	issued := as.Issued()
	if len(issued) < 4 {
		t.Fatalf("only %d tokens issued", len(issued))
	}
	cb, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(issued, cb.Query().Get("code"), cb.Query().Get("state")) {
		for where, text := range map[string]string{"events": evs, "explain": explain, "logs": logs.String(), "export": export, "data file": string(raw)} {
			if strings.Contains(text, s) {
				t.Errorf("%s holds %q in clear", where, s)
			}
		}
	}
}
