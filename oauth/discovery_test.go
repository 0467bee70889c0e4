package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpes/mcpes/oauth"
)

func TestParseChallenge(t *testing.T) {
	for name, c := range map[string]struct {
		in   []string
		want oauth.Challenge
		ok   bool
	}{
		"full": {[]string{`Bearer error="insufficient_scope", scope="a b", resource_metadata="http://x/.well-known/oauth-protected-resource"`},
			oauth.Challenge{Error: "insufficient_scope", Scope: "a b", ResourceMetadata: "http://x/.well-known/oauth-protected-resource"}, true},
		"after another scheme":    {[]string{`Basic realm="r", Bearer scope="s"`}, oauth.Challenge{Scope: "s"}, true},
		"quoted comma and escape": {[]string{`Bearer scope="a,b", error_description="say \"no\""`}, oauth.Challenge{Scope: "a,b"}, true},
		"bare token":              {[]string{`Bearer error=invalid_token`}, oauth.Challenge{Error: "invalid_token"}, true},
		"none":                    {[]string{`Basic realm="x"`}, oauth.Challenge{}, false},
	} {
		got, ok := oauth.ParseChallenge(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %+v %t, want %+v %t", name, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer error="insufficient_scope", scope="a b", resource_metadata="http://x"`)
	f.Add(`Basic realm="r", Bearer scope="s"`)
	f.Add(`Bearer scope="unterminated`)
	f.Fuzz(func(t *testing.T, h string) {
		c, _ := oauth.ParseChallenge([]string{h})
		if len(c.Scope) > len(h) || len(c.ResourceMetadata) > len(h) {
			t.Fatalf("parsed more than was given: %+v", c)
		}
	})
}

// asServer serves PRM and AS metadata that the test shapes.
func asServer(t *testing.T, md func(base string) map[string]any) string {
	t.Helper()
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"resource": base + "/mcp", "authorization_servers": []string{base}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(md(base))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	base = ts.URL
	return base
}

func TestDiscover_Refusals(t *testing.T) {
	c := &oauth.Client{RedirectURL: "http://127.0.0.1:1/cb"}
	ctx := context.Background()
	// given an AS that does not advertise PKCE S256, then discovery refuses it
	noPKCE := asServer(t, func(b string) map[string]any {
		return map[string]any{"issuer": b, "authorization_endpoint": b + "/a", "token_endpoint": b + "/t"}
	})
	if _, err := c.Discover(ctx, noPKCE+"/mcp", oauth.Challenge{}); !errors.Is(err, oauth.ErrNoPKCE) {
		t.Errorf("no PKCE: %v, want ErrNoPKCE", err)
	}
	// given metadata whose issuer is another server's, then discovery refuses it
	wrongIssuer := asServer(t, func(string) map[string]any {
		return map[string]any{"issuer": "https://other.example", "authorization_endpoint": "https://other.example/a",
			"token_endpoint": "https://other.example/t", "code_challenge_methods_supported": []string{"S256"}}
	})
	if _, err := c.Discover(ctx, wrongIssuer+"/mcp", oauth.Challenge{}); !errors.Is(err, oauth.ErrIssuerMismatch) {
		t.Errorf("wrong issuer: %v, want ErrIssuerMismatch", err)
	}
	// given a good AS, then discovery names the resource and endpoints
	good := asServer(t, func(b string) map[string]any {
		return map[string]any{"issuer": b, "authorization_endpoint": b + "/a", "token_endpoint": b + "/t",
			"code_challenge_methods_supported": []string{"S256"}}
	})
	d, err := c.Discover(ctx, good+"/mcp", oauth.Challenge{})
	if err != nil || d.Resource != good+"/mcp" || d.Server.TokenEndpoint != good+"/t" || d.Legacy {
		t.Errorf("good: %+v %v", d, err)
	}
}
