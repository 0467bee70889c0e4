package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/oauth"
)

// seen is one request the broker's HTTP client sent.
type seen struct{ host, path, header string }

// recorder sends requests on and notes each one's host, path and X-Tenant header.
type recorder struct {
	mu  sync.Mutex
	got []seen
}

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec.mu.Lock()
	rec.got = append(rec.got, seen{req.URL.Host, req.URL.Path, req.Header.Get("X-Tenant")})
	rec.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (rec *recorder) all() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.got...)
}

// recordedRig is a rig whose broker's requests are recorded and whose gh config is cfg.
func recordedRig(t *testing.T, cfg domain.ServerConfig, logs *bytes.Buffer) (*rig, *recorder) {
	r := newRig(t)
	rec := &recorder{}
	r.broker.Client.HTTP = &http.Client{Transport: rec, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r.broker.Servers = func(owner, name string) (domain.ServerState, bool) {
		return domain.ServerState{Scope: domain.UserScope("alice"), Name: name, Config: cfg}, name == "gh"
	}
	r.broker.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return r, rec
}

// flow authorizes alice for gh through Authorize, refreshes and revokes.
func (r *rig) flow(t *testing.T, ctx context.Context) string {
	u, err := r.broker.Authorize(ctx, "owner:alice", "alice", "gh")
	if err != nil {
		t.Fatal(err)
	}
	q, err := oauth.FollowHeadless(ctx, nil, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.broker.Callback(ctx, q); err != nil {
		t.Fatalf("callback: %v", err)
	}
	if _, err := r.broker.Refresh(ctx, "alice", "gh"); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if told, err := r.broker.Revoke(ctx, "owner:alice", "alice", "gh"); err != nil || !told {
		t.Fatalf("revoke: %t %v", told, err)
	}
	return u
}

func TestBroker_OAuthHeaders_OnEveryRequestToTheAuthorizationServer(t *testing.T) {
	ctx := context.Background()
	const value = "tenant-secret-42"
	ref := domain.SecretRef([]byte("k"), value)
	var logs bytes.Buffer
	// given gh's oauth_headers carry a sealed secret reference
	r, rec := recordedRig(t, domain.ServerConfig{Type: "streamable-http", OAuthHeaders: map[string]string{"X-Tenant": ref}}, &logs)
	r.broker.Servers = withURL(r.broker.Servers, r.as.URL+"/mcp")
	r.broker.Secret = func(s string) (string, error) {
		if s != ref {
			t.Fatalf("resolved %q", s)
		}
		return value, nil
	}
	// when alice authorizes, the grant is refreshed and revoked
	r.flow(t, ctx)
	// then every request to the authorization server carried the resolved value
	want := map[string]bool{"/.well-known/oauth-protected-resource/mcp": false, "/.well-known/oauth-authorization-server": false,
		"/register": false, "/token": false, "/revoke": false}
	tokens := 0
	for _, s := range rec.all() {
		if s.path == "/mcp" {
			if s.header != "" {
				t.Errorf("the MCP server's probe got the oauth header")
			}
			continue
		}
		if s.header != value {
			t.Errorf("%s sent X-Tenant %q", s.path, s.header)
		}
		want[s.path] = true
		if s.path == "/token" {
			tokens++
		}
	}
	for p, ok := range want {
		if !ok {
			t.Errorf("no request to %s", p)
		}
	}
	if tokens != 2 {
		t.Errorf("%d token requests, want the exchange and the refresh", tokens)
	}
	// and the value is neither in the log nor in the events
	evs, _ := r.vault.ReadAll(ctx, 0, 1000)
	raw, _ := json.Marshal(evs)
	if strings.Contains(logs.String(), value) || bytes.Contains(raw, []byte(value)) {
		t.Error("the oauth header's value leaked into the log or the events")
	}
}

// withURL gives every config Servers returns the URL u.
func withURL(f func(string, string) (domain.ServerState, bool), u string) func(string, string) (domain.ServerState, bool) {
	return func(owner, name string) (domain.ServerState, bool) {
		st, ok := f(owner, name)
		st.Config.URL = u
		return st, ok
	}
}

func TestBroker_OAuthBlock_PinnedEndpointsReplaceDiscovery(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	r, rec := recordedRig(t, domain.ServerConfig{}, &logs)
	// given a second host whose /alt/* endpoints front the authorization server
	target, _ := url.Parse(r.as.URL)
	alt := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, "/alt")
	}})
	t.Cleanup(alt.Close)
	// and gh's oauth block pins them, with a pre-registered client
	cfg := domain.ServerConfig{Type: "streamable-http", URL: r.as.URL + "/mcp", OAuth: &domain.OAuthConfig{
		AuthorizationURL: alt.URL + "/alt/authorize", TokenURL: alt.URL + "/alt/token",
		RevocationEndpoint: alt.URL + "/alt/revoke", ClientID: "pinned-client"}}
	r.broker.Servers = func(owner, name string) (domain.ServerState, bool) {
		return domain.ServerState{Scope: domain.UserScope("alice"), Name: name, Config: cfg}, name == "gh"
	}
	// when alice authorizes, the grant is refreshed and revoked
	u := r.flow(t, ctx)
	// then she was sent to the pinned authorization endpoint, with PKCE S256 and the resource
	pu, _ := url.Parse(u)
	q := pu.Query()
	if !strings.HasPrefix(u, alt.URL+"/alt/authorize?") || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("resource") != r.as.URL+"/mcp" || q.Get("client_id") != "pinned-client" {
		t.Fatalf("authorization URL %s", u)
	}
	// and the exchange, the refresh and the revocation went to the pinned endpoints, no metadata was fetched
	altHost := strings.TrimPrefix(alt.URL, "http://")
	var got []string
	for _, s := range rec.all() {
		if s.path == "/.well-known/oauth-authorization-server" || s.path == "/register" {
			t.Errorf("request to %s despite pinned endpoints", s.path)
		}
		if s.host == altHost {
			got = append(got, s.path)
		}
	}
	if strings.Join(got, ",") != "/alt/token,/alt/token,/alt/revoke,/alt/revoke" {
		t.Errorf("requests to the pinned host %v", got)
	}
	if r.as.CodeRequests.Load() != 1 || r.as.RefreshRequests.Load() != 1 || r.as.Revocations.Load() != 2 {
		t.Errorf("authorization server saw %d codes, %d refreshes, %d revocations", r.as.CodeRequests.Load(),
			r.as.RefreshRequests.Load(), r.as.Revocations.Load())
	}
}
