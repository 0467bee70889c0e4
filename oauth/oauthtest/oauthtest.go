// Package oauthtest runs a small OAuth 2.1 authorization server and an MCP server
// protected by it, on loopback, for tests of mcpes's OAuth client: the server
// redirects at once (no person), checks PKCE S256 and the resource indicator,
// rotates refresh tokens and detects their reuse (revoking the whole family, as
// OAuth 2.1 asks), and counts token requests.
package oauthtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Server is the authorization server and the protected MCP server on one listener.
type Server struct {
	// URL is the base URL; the MCP endpoint is URL+"/mcp".
	URL string
	// TokenTTL is the lifetime of access tokens (default 1 h).
	TokenTTL time.Duration
	// Unavailable makes the token endpoint answer 503 to refreshes while set.
	Unavailable atomic.Bool

	// TokenRequests counts requests to the token endpoint, by grant type.
	CodeRequests, RefreshRequests atomic.Int64
	// Reuses counts refresh tokens presented after they were rotated.
	Reuses atomic.Int64
	// Registrations counts dynamic client registrations.
	Registrations atomic.Int64
	// Revocations counts RFC 7009 revocation requests.
	Revocations atomic.Int64
	// ToolCalls counts tool calls the MCP server answered.
	ToolCalls atomic.Int64
	// requireScope, when set, is a scope a tools/call's token must carry, else the
	// call is refused with 403 insufficient_scope (see RequireScope).
	requireScope atomic.Value

	mu       sync.Mutex
	codes    map[string]codeGrant
	access   map[string]tokenInfo
	refresh  map[string]*family // live refresh token → its family
	used     map[string]*family // rotated refresh tokens
	revoked  bool
	ts       *httptest.Server
	resource string
}

type codeGrant struct {
	challenge, resource, scope string
}

type tokenInfo struct {
	expires time.Time
	fam     *family
}

// family is the tokens of one authorization: the scope granted, and whether revoked.
type family struct {
	dead  bool
	scope string
}

// RequireScope makes tools/call need a token carrying scope ("" needs none).
func (s *Server) RequireScope(scope string) { s.requireScope.Store(scope) }

// Start runs a Server until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{TokenTTL: time.Hour, codes: map[string]codeGrant{}, access: map[string]tokenInfo{},
		refresh: map[string]*family{}, used: map[string]*family{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", s.prm)
	mux.HandleFunc("POST /register", s.register)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /revoke", s.revoke)
	ms := server.NewMCPServer("protected", "1.0.0", server.WithToolCapabilities(false))
	ms.AddTool(mcp.NewTool("whoami", mcp.WithDescription("says the call was authorized")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			s.ToolCalls.Add(1)
			return mcp.NewToolResultText("authorized"), nil
		})
	mcpH := server.NewStreamableHTTPServer(ms, server.WithStateLess(true))
	mux.Handle("/mcp", s.protect(mcpH))
	s.ts = httptest.NewServer(mux)
	tb.Cleanup(s.ts.Close)
	s.URL = s.ts.URL
	s.resource = s.URL + "/mcp"
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{"issuer": s.URL, "authorization_endpoint": s.URL + "/authorize",
		"token_endpoint": s.URL + "/token", "registration_endpoint": s.URL + "/register",
		"revocation_endpoint": s.URL + "/revoke", "code_challenge_methods_supported": []string{"S256"},
		"grant_types_supported": []string{"authorization_code", "refresh_token"}, "response_types_supported": []string{"code"},
		"token_endpoint_auth_methods_supported": []string{"none"}, "authorization_response_iss_parameter_supported": true})
}

func (s *Server) prm(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, 200, map[string]any{"resource": s.resource, "authorization_servers": []string{s.URL},
		"scopes_supported": []string{"tools"}})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	s.Registrations.Add(1)
	var body map[string]any
	_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body)
	writeJSON(w, 201, map[string]any{"client_id": "client-" + random(), "token_endpoint_auth_method": "none",
		"redirect_uris": body["redirect_uris"]})
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("resource") != s.resource {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := random()
	s.mu.Lock()
	s.codes[code] = codeGrant{challenge: q.Get("code_challenge"), resource: q.Get("resource"), scope: q.Get("scope")}
	s.mu.Unlock()
	v := redirect.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	v.Set("iss", s.URL)
	redirect.RawQuery = v.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if r.PostForm.Get("resource") != s.resource {
		writeJSON(w, 400, map[string]string{"error": "invalid_target"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.CodeRequests.Add(1)
		cg, ok := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != cg.challenge {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		scope := cg.scope
		if scope == "" {
			scope = "tools"
		}
		s.issue(w, &family{scope: scope})
	case "refresh_token":
		s.RefreshRequests.Add(1)
		if s.Unavailable.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		rt := r.PostForm.Get("refresh_token")
		if fam, reused := s.used[rt]; reused {
			s.Reuses.Add(1)
			fam.dead = true // reuse of a rotated token: revoke the family
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		fam, ok := s.refresh[rt]
		if !ok || fam.dead || s.revoked {
			writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
			return
		}
		delete(s.refresh, rt)
		s.used[rt] = fam
		s.issue(w, fam)
	default:
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
	}
}

// issue (s.mu held) answers a new access and refresh token of fam.
func (s *Server) issue(w http.ResponseWriter, fam *family) {
	at, rt := "at-"+random(), "rt-"+random()
	s.access[at] = tokenInfo{expires: time.Now().Add(s.TokenTTL), fam: fam}
	s.refresh[rt] = fam
	writeJSON(w, 200, map[string]any{"access_token": at, "token_type": "Bearer", "refresh_token": rt,
		"expires_in": int(s.TokenTTL.Seconds()), "scope": fam.scope})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	s.Revocations.Add(1)
	s.mu.Lock()
	tok := r.PostForm.Get("token")
	if fam, ok := s.refresh[tok]; ok {
		fam.dead = true
	}
	if ti, ok := s.access[tok]; ok {
		ti.fam.dead = true
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// FamilyRevoked reports whether any token family was revoked for reuse.
func (s *Server) FamilyRevoked() bool { return s.Reuses.Load() > 0 }

// Expire makes every access token issued so far expired.
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ti := range s.access {
		ti.expires = time.Now().Add(-time.Second)
		s.access[k] = ti
	}
}

func (s *Server) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ti, known := s.access[tok]
		valid := ok && known && time.Now().Before(ti.expires) && !ti.fam.dead
		s.mu.Unlock()
		if !valid {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+s.URL+`/.well-known/oauth-protected-resource/mcp", scope="tools"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
			return
		}
		if need, _ := s.requireScope.Load().(string); need != "" && r.Method == http.MethodPost &&
			!slices.Contains(strings.Fields(ti.fam.scope), need) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if bytes.Contains(body, []byte(`"tools/call"`)) {
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+need+
					`", resource_metadata="`+s.URL+`/.well-known/oauth-protected-resource/mcp"`)
				http.Error(w, "insufficient scope", http.StatusForbidden)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RevokeAll kills every token family, as an AS-side revocation does.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	for _, ti := range s.access {
		ti.fam.dead = true
	}
}

// Issued returns every access and refresh token issued so far, for tests that
// check that none appears in clear anywhere.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.access {
		out = append(out, t)
	}
	for t := range s.refresh {
		out = append(out, t)
	}
	for t := range s.used {
		out = append(out, t)
	}
	return out
}

// IssueForTest returns a new valid access token without a flow.
func (s *Server) IssueForTest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := "at-" + random()
	s.access[at] = tokenInfo{expires: time.Now().Add(s.TokenTTL), fam: &family{}}
	return at
}
