package oauth

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DefaultMaxAttempts bounds the authorizations one request may trigger (the first
// on 401, then step-ups on 403 insufficient_scope), so a resource that never
// accepts a token cannot loop a client.
const DefaultMaxAttempts = 3

// maxReplayBody bounds a request body buffered for a retry.
const maxReplayBody = 16 << 20

// Transport is the http.RoundTripper an MCP client (mcp-go's streamable HTTP
// transport) uses towards one protected server: it sends the current access token
// and, on a 401 or a 403 insufficient_scope challenge, calls Authorize and retries
// the request with the new token, at most MaxAttempts times per request.
type Transport struct {
	// Base sends the requests (nil: http.DefaultTransport).
	Base http.RoundTripper
	// Token returns the access token to send ("" sends none).
	Token func(ctx context.Context) (string, error)
	// Authorize is called with the status and challenge of a refused request. It
	// returns true when a new token is ready and the request should be retried.
	// Nil (or false) hands the refusal to the caller.
	Authorize func(ctx context.Context, status int, ch Challenge) (bool, error)
	// MaxAttempts bounds Authorize calls per request (default DefaultMaxAttempts).
	MaxAttempts int
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	max := t.MaxAttempts
	if max <= 0 {
		max = DefaultMaxAttempts
	}
	getBody := req.GetBody
	if req.Body != nil && req.Body != http.NoBody && getBody == nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxReplayBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > maxReplayBody {
			return nil, fmt.Errorf("oauth transport: request body over %d bytes", maxReplayBody)
		}
		getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	for attempt := 0; ; attempt++ {
		r := req.Clone(req.Context())
		if getBody != nil {
			body, err := getBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		if t.Token != nil {
			tok, err := t.Token(req.Context())
			if err != nil {
				return nil, err
			}
			if tok != "" {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
		}
		resp, err := base.RoundTrip(r)
		if err != nil || t.Authorize == nil || attempt >= max {
			return resp, err
		}
		ch, refused := refusal(resp)
		if !refused {
			return resp, nil
		}
		ok, aerr := t.Authorize(req.Context(), resp.StatusCode, ch)
		if aerr != nil || !ok {
			return resp, nil // the caller sees the refusal itself
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}

// refusal reports whether resp asks for (more) authorization: any 401, or a 403
// whose challenge says insufficient_scope.
func refusal(resp *http.Response) (Challenge, bool) {
	ch, _ := ParseChallenge(resp.Header.Values("WWW-Authenticate"))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return ch, true
	case http.StatusForbidden:
		return ch, ch.Error == "insufficient_scope"
	}
	return ch, false
}

// StepUpScope is the scope to ask for after a 403 insufficient_scope: what was
// granted and what the challenge asks for, each once.
func StepUpScope(granted string, ch Challenge) string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(strings.Fields(granted), strings.Fields(ch.Scope)...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// FollowHeadless opens an authorization URL the way a browser would for an
// authorization server that redirects at once (test servers, the conformance
// suite): it GETs it with hc (which must not follow redirects) and returns the
// query of the redirect's Location, i.e. what the callback would receive.
func FollowHeadless(ctx context.Context, hc *http.Client, authURL string) (url.Values, error) {
	if hc == nil {
		hc = noRedirects
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("authorization endpoint answered HTTP %d without a redirect", resp.StatusCode)
	}
	return loc.Query(), nil
}
