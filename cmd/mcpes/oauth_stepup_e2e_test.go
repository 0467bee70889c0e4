package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/handlers/gateway"
	"github.com/mcpes/mcpes/oauth/oauthtest"
)

// modernClient is alice's MCP client of /mcp in the 2026-07-28 era (sessionless).
func modernClient(tb testing.TB, base, token string) *client.Client {
	tb.Helper()
	tp, err := transport.NewStreamableHTTP(base+"/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		tb.Fatal(err)
	}
	c := client.NewClient(tp)
	if err := c.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "alice-modern", Version: "1"}
	if _, err := c.Initialize(context.Background(), in); err != nil {
		tb.Fatal(err)
	}
	return c
}

// scopeOf is the scope parameter of an authorization link.
func scopeOf(tb testing.TB, link string) string {
	tb.Helper()
	u, err := url.Parse(link)
	if err != nil {
		tb.Fatalf("link %q: %v", link, err)
	}
	return u.Query().Get("scope")
}

// linkIn is the authorization link at the end of a tool error's text ("" when none).
func linkIn(r *mcp.CallToolResult) string {
	t := resultText(r)
	if r == nil || !r.IsError || !strings.Contains(t, "/authorize?") {
		return ""
	}
	return t[strings.LastIndex(t, " ")+1:]
}

func TestOAuth_StepUp_InsufficientScopeSendsTheOwnerToAuthorizeMore(t *testing.T) {
	ctx := context.Background()
	// given an app server needing OAuth, and alice authorized for it (scope "tools")
	as := oauthtest.Start(t)
	key, _ := credentials.GenerateKey("k1")
	t.Setenv(credentials.EnvKeys, key)
	const aliceTok, adminTok = "alice-api-token-0123456789", "admin-api-token-0123456789"
	cfg := &config.Config{DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0",
		Auth: config.Auth{Tokens: []config.Token{{SHA256: handlers.HashToken(aliceTok), Role: config.RoleOwner, Owner: "alice"},
			{SHA256: handlers.HashToken(adminTok), Role: config.RoleAdmin}}},
		MCPServers: map[string]domain.ServerConfig{"gh": {Type: "streamable-http", URL: as.URL + "/mcp", InitTimeoutMS: 10000}}}
	cfg.SetDefaults()
	m := &Main{Config: cfg, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(ctx) })
	base := "http://" + m.Addr()
	for deadline := time.Now().Add(20 * time.Second); get(t, base+"/readyz") != 200; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
	}
	follow := func(link string) {
		t.Helper()
		code, loc := call(t, "GET", link, "")
		if code != http.StatusFound {
			t.Fatalf("authorization endpoint: %d %s", code, loc)
		}
		if code, body := call(t, "GET", loc, ""); code != 200 {
			t.Fatalf("callback: %d %s", code, body)
		}
	}
	code, body := call(t, "POST", base+"/v1/servers/gh/authorize", aliceTok)
	var ar handlers.AuthorizeResponse
	if code != 200 || json.Unmarshal([]byte(body), &ar) != nil {
		t.Fatalf("authorize: %d %s", code, body)
	}
	follow(ar.URL)
	plain := gatewayClient(t, base, aliceTok, false)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tools, err := plain.ListTools(ctx, mcp.ListToolsRequest{})
		if err == nil && slices.ContainsFunc(tools.Tools, func(tl mcp.Tool) bool { return tl.Name == "gh__whoami" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gh__whoami never offered: %v", err)
		}
	}
	if res, err := whoami(t, plain); err != nil || resultText(res) != "authorized" {
		t.Fatalf("authorized call: %v %q", err, resultText(res))
	}

	// when gh starts to refuse calls without scope "admin" (403 insufficient_scope)
	as.RequireScope("admin")
	// then alice's call answers with a link asking for what she holds and "admin"
	res, err := whoami(t, plain)
	link := linkIn(res)
	if err != nil || link == "" || scopeOf(t, link) != "tools admin" {
		t.Fatalf("call refused for scope: %v %q", err, resultText(res))
	}
	// and a client that declared URL elicitation gets -32042 with such a link
	_, err = whoami(t, gatewayClient(t, base, aliceTok, true))
	var need mcp.URLElicitationRequiredError
	if !errors.As(err, &need) || len(need.Elicitations) != 1 || scopeOf(t, need.Elicitations[0].URL) != "tools admin" {
		t.Fatalf("elicitation client: %v", err)
	}
	// when she keeps calling without authorizing, then after MaxStepUps links the
	// refusal itself comes back
	for i := 2; i < gateway.MaxStepUps; i++ {
		if res, err := whoami(t, plain); err != nil || linkIn(res) == "" {
			t.Fatalf("step-up %d: %v %q", i+1, err, resultText(res))
		}
	}
	if res, err := whoami(t, plain); err == nil && linkIn(res) != "" {
		t.Fatalf("step-up beyond the limit: %q", resultText(res))
	}

	// when she opens the link, then her calls go through again with the wider grant
	follow(link)
	if res, err := whoami(t, plain); err != nil || resultText(res) != "authorized" {
		t.Fatalf("call after step-up: %v %q", err, resultText(res))
	}
	// and the successful call reset the limit: the next challenge gets a link again
	as.RequireScope("super")
	if res, err := whoami(t, plain); err != nil || scopeOf(t, linkIn(res)) != "tools admin super" {
		t.Fatalf("step-up after a success: %v %q", err, resultText(res))
	}
	// and a client of the 2026-07-28 era (no session, no -32042) gets the link in a result
	modern := modernClient(t, base, aliceTok)
	if res, err := whoami(t, modern); err != nil || scopeOf(t, linkIn(res)) != "tools admin super" {
		t.Fatalf("modern client's step-up: %v %q", err, resultText(res))
	}
	// and its successful call resets the limit too
	as.RequireScope("")
	if res, err := whoami(t, modern); err != nil || resultText(res) != "authorized" {
		t.Fatalf("modern client's call: %v %q", err, resultText(res))
	}
	as.RequireScope("x")
	for i := range gateway.MaxStepUps {
		if res, err := whoami(t, modern); err != nil || linkIn(res) == "" {
			t.Fatalf("step-up %d after the modern client's success: %v %q", i+1, err, resultText(res))
		}
	}
	// and each step-up was recorded as a flow started with the wider scope
	_, evs := call(t, "GET", base+"/v1/events?type=mcpes.oauth.flow_started.v1&limit=1000", adminTok)
	if n := strings.Count(evs, `"scope":"tools admin"`); n != gateway.MaxStepUps {
		t.Errorf("%d flows started for tools admin, want %d: %s", n, gateway.MaxStepUps, evs)
	}
}
