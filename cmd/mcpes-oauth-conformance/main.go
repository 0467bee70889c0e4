// Command mcpes-oauth-conformance is an MCP client that the MCP conformance suite
// drives to test mcpes's OAuth client:
//
//	conformance client --command mcpes-oauth-conformance --suite auth
//
// The suite appends the server URL as the last argument and passes pre-registered
// credentials in MCP_CONFORMANCE_CONTEXT. The client connects with mcp-go through
// oauth.Transport, authorizes with the same oauth.Client the service uses (the
// suite's authorization server redirects at once, so no person is needed), lists
// the tools and calls the first one. It exits 0 when all of that worked.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/oauth"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mcpes-oauth-conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cimd := fs.String("client-metadata-url", "https://conformance-test.local/client-metadata.json",
		"client ID metadata document URL used as client_id where the authorization server supports it")
	timeout := fs.Duration("timeout", 25*time.Second, "overall time limit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "usage: mcpes-oauth-conformance [flags] SERVER_URL")
		return 2
	}
	serverURL := fs.Arg(fs.NArg() - 1)
	var pre *oauth.Registration
	if c := getenv("MCP_CONFORMANCE_CONTEXT"); c != "" {
		var ctxv struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.Unmarshal([]byte(c), &ctxv); err == nil && ctxv.ClientID != "" {
			pre = &oauth.Registration{ClientID: ctxv.ClientID, ClientSecret: ctxv.ClientSecret}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	oc := &oauth.Client{RedirectURL: "http://127.0.0.1:3333/callback", ClientMetadataURL: *cimd,
		ClientName: "mcpes-oauth-conformance", ApplicationType: "native"}
	if err := connect(ctx, oc, serverURL, pre); err != nil {
		fmt.Fprintln(stderr, "mcpes-oauth-conformance:", err)
		return 1
	}
	return 0
}

// session holds the one grant of this run.
type session struct {
	mu    sync.Mutex
	oc    *oauth.Client
	url   string
	pre   *oauth.Registration
	grant *oauth.Grant
}

func (s *session) token(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grant == nil {
		return "", nil
	}
	return s.grant.AccessToken, nil
}

// authorize runs one authorization: on 403 it asks for the granted scopes plus the
// challenge's (step-up); the transport bounds how often per request.
func (s *session) authorize(ctx context.Context, status int, ch oauth.Challenge) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	scope := ""
	if status == http.StatusForbidden && s.grant != nil {
		scope = oauth.StepUpScope(s.grant.Scope, ch)
	}
	p, err := s.oc.Begin(ctx, s.url, ch, s.pre, scope)
	if err != nil {
		return false, err
	}
	q, err := oauth.FollowHeadless(ctx, nil, p.AuthURL)
	if err != nil {
		return false, err
	}
	g, err := s.oc.Finish(ctx, p, q)
	if err != nil {
		return false, err
	}
	s.grant = g
	return true, nil
}

func connect(ctx context.Context, oc *oauth.Client, serverURL string, pre *oauth.Registration) error {
	s := &session{oc: oc, url: serverURL, pre: pre}
	var authErr error
	tr := &oauth.Transport{Token: s.token, Authorize: func(ctx context.Context, status int, ch oauth.Challenge) (bool, error) {
		ok, err := s.authorize(ctx, status, ch)
		if err != nil {
			authErr = err
		}
		return ok, err
	}}
	tp, err := transport.NewStreamableHTTP(serverURL, transport.WithHTTPBasicClient(&http.Client{Transport: tr}))
	if err != nil {
		return err
	}
	c := client.NewClient(tp, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	defer c.Close()
	withAuth := func(err error) error {
		if err != nil && authErr != nil {
			return errors.Join(err, authErr)
		}
		return err
	}
	if err := c.Start(ctx); err != nil {
		return withAuth(err)
	}
	var in mcp.InitializeRequest
	in.Params.ClientInfo = mcp.Implementation{Name: "mcpes-oauth-conformance", Version: "1"}
	if _, err := c.Initialize(ctx, in); err != nil {
		return withAuth(fmt.Errorf("initialize: %w", err))
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return withAuth(fmt.Errorf("list tools: %w", err))
	}
	if len(tools.Tools) > 0 {
		var call mcp.CallToolRequest
		call.Params.Name = tools.Tools[0].Name
		call.Params.Arguments = map[string]any{}
		if _, err := c.CallTool(ctx, call); err != nil {
			return withAuth(fmt.Errorf("call %s: %w", call.Params.Name, err))
		}
	}
	return nil
}
