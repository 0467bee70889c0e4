package domain

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// This file holds the LibreChat fields beyond the basics, with the same rules
// LibreChat's schema (librechat-data-provider MCPOptionsSchema) applies to them, and
// what mcpes does with each:
//
//   - cwd: the stdio child's working directory.
//   - stderr: "pipe" (default: kept for error messages) or "ignore" or "inherit" (the
//     child writes to mcpes's stderr). A file descriptor number is refused: it would
//     hand one of mcpes's own open files (the log, a socket) to the child.
//   - sseReadTimeout: how long the SSE stream may stay silent before it counts as lost.
//   - proxy: an http, https or socks5 proxy for sse and streamable-http (app scope only).
//   - requestHeaders: sent with every HTTP request, like headers.
//   - oauth, oauth_headers, oauthRefresh*, oauthPersistenceWaitTimeout: kept for the
//     OAuth flow; client_secret is a secret (sealed like header values).
//   - apiKey: source admin: key is a secret of the app config, sent as the
//     authorization_type says; source user: each owner sets the key as a per-owner value.
//   - obo: on-behalf-of scopes (sse and streamable-http only), kept for the OAuth flow.

// Stderr is the stdio stderr setting: a mode, or a file descriptor number (FD >= 0
// with Mode "").
type Stderr struct {
	Mode string
	FD   int64
}

// Stderr modes.
const (
	StderrPipe    = "pipe"
	StderrIgnore  = "ignore"
	StderrInherit = "inherit"
)

// MarshalJSON writes the mode, or the number when there is no mode.
func (s Stderr) MarshalJSON() ([]byte, error) {
	if s.Mode != "" {
		return json.Marshal(s.Mode)
	}
	return json.Marshal(s.FD)
}

// UnmarshalJSON accepts a string or a whole number.
func (s *Stderr) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case string:
		*s = Stderr{Mode: t}
	case float64:
		if t != float64(int64(t)) {
			return fmt.Errorf("stderr: want pipe, ignore, inherit or a whole number")
		}
		*s = Stderr{FD: int64(t)}
	default:
		return fmt.Errorf("stderr: want pipe, ignore, inherit or a whole number")
	}
	return nil
}

// OAuthConfig is LibreChat's oauth block for one server.
type OAuthConfig struct {
	AuthorizationURL                       string   `json:"authorization_url,omitempty"`
	TokenURL                               string   `json:"token_url,omitempty"`
	ClientID                               string   `json:"client_id,omitempty"`
	ClientSecret                           string   `json:"client_secret,omitempty"`
	Scope                                  string   `json:"scope,omitempty"`
	RedirectURI                            string   `json:"redirect_uri,omitempty"`
	TokenExchangeMethod                    string   `json:"token_exchange_method,omitempty"`
	GrantTypesSupported                    []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	ResponseTypesSupported                 []string `json:"response_types_supported,omitempty"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported,omitempty"`
	SkipCodeChallengeCheck                 *bool    `json:"skip_code_challenge_check,omitempty"`
	Audience                               *string  `json:"audience,omitempty"`
	ForwardAudienceOnRefresh               *bool    `json:"forward_audience_on_refresh,omitempty"`
	SendResourceParameter                  *bool    `json:"send_resource_parameter,omitempty"`
	RevocationEndpoint                     string   `json:"revocation_endpoint,omitempty"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
}

func (o *OAuthConfig) clone() *OAuthConfig {
	if o == nil {
		return nil
	}
	c := *o
	c.GrantTypesSupported = slices.Clone(o.GrantTypesSupported)
	c.TokenEndpointAuthMethodsSupported = slices.Clone(o.TokenEndpointAuthMethodsSupported)
	c.ResponseTypesSupported = slices.Clone(o.ResponseTypesSupported)
	c.CodeChallengeMethodsSupported = slices.Clone(o.CodeChallengeMethodsSupported)
	c.RevocationEndpointAuthMethodsSupported = slices.Clone(o.RevocationEndpointAuthMethodsSupported)
	c.SkipCodeChallengeCheck = clonePtr(o.SkipCodeChallengeCheck)
	c.Audience = clonePtr(o.Audience)
	c.ForwardAudienceOnRefresh = clonePtr(o.ForwardAudienceOnRefresh)
	c.SendResourceParameter = clonePtr(o.SendResourceParameter)
	return &c
}

// APIKey is LibreChat's apiKey block: where the key comes from and how it is sent.
type APIKey struct {
	Key               string `json:"key,omitempty"`
	Source            string `json:"source"`
	AuthorizationType string `json:"authorization_type"`
	CustomHeader      string `json:"custom_header,omitempty"`
}

// API key sources and authorization types.
const (
	APIKeySourceAdmin = "admin"
	APIKeySourceUser  = "user"
	APIKeyBearer      = "bearer"
	APIKeyBasic       = "basic"
	APIKeyCustom      = "custom"
)

// APIKeyVar is the per-owner value name of a source: user API key (set through
// PUT /v1/servers/{name}/vars like a customUserVars value).
const APIKeyVar = "MCP_API_KEY"

// APIKeyHeader returns the header name and value an API key is sent with:
// Authorization "Bearer KEY" or "Basic KEY", or custom_header (default X-Api-Key)
// carrying the key as is.
func (k APIKey) APIKeyHeader(key string) (string, string) {
	switch k.AuthorizationType {
	case APIKeyBearer:
		return "Authorization", "Bearer " + key
	case APIKeyBasic:
		return "Authorization", "Basic " + key
	}
	if k.CustomHeader != "" {
		return k.CustomHeader, key
	}
	return "X-Api-Key", key
}

// OBO is LibreChat's on-behalf-of block.
type OBO struct {
	Scopes string `json:"scopes"`
}

// MaxOAuthPersistenceWaitMS is LibreChat's cap on oauthPersistenceWaitTimeout.
const MaxOAuthPersistenceWaitMS = 14 * 60_000

// titleOK is LibreChat's MCP_SERVER_TITLE_PATTERN: a letter or number, then letters,
// numbers, marks, apostrophes, spaces and hyphens.
func titleOK(s string) bool {
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsNumber(r):
		case i > 0 && (unicode.Is(unicode.M, r) || strings.ContainsRune("'’ -", r)):
		default:
			return false
		}
	}
	return true
}

// libreChat checks the LibreChat fields of cfg for its transport.
func (v *validator) libreChat(cfg ServerConfig, transport string, user bool) {
	if cfg.Title != "" && !titleOK(cfg.Title) {
		v.add("title", "must start with a letter or number and can include spaces, hyphens, and apostrophes")
	}
	if cfg.Stderr != nil {
		switch cfg.Stderr.Mode {
		case StderrPipe, StderrIgnore, StderrInherit:
		case "":
			v.add("stderr", "a file descriptor number is not supported (it would give the child one of mcpes's own open files); use pipe, ignore or inherit")
		default:
			v.add("stderr", "want pipe, ignore or inherit, got %q", cfg.Stderr.Mode)
		}
	}
	if len(cfg.Cwd) > MaxCommandLen || strings.ContainsRune(cfg.Cwd, 0) {
		v.add("cwd", "longer than %d bytes or contains a NUL byte", MaxCommandLen)
	}
	v.positive("sseReadTimeout", cfg.SSEReadTimeoutMS, MaxTimeoutMS)
	v.positive("oauthRefreshWaitTimeout", cfg.OAuthRefreshWaitTimeoutMS, MaxTimeoutMS)
	v.positive("oauthPersistenceWaitTimeout", cfg.OAuthPersistenceWaitTimeoutMS, MaxOAuthPersistenceWaitMS)
	if cfg.Proxy != "" {
		switch {
		case user:
			v.add("proxy", "not allowed for user-scope servers (as in LibreChat)")
		case transport == TransportSSE || transport == TransportStreamableHTTP:
			v.proxy(cfg.Proxy)
		}
	}
	v.headers("requestHeaders", cfg.RequestHeaders, user)
	v.headers("oauth_headers", cfg.OAuthHeaders, user)
	if cfg.OAuth != nil {
		v.oauth(*cfg.OAuth, user)
	}
	if k := cfg.APIKey; k != nil {
		if k.Source != APIKeySourceAdmin && k.Source != APIKeySourceUser {
			v.add("apiKey.source", "want admin or user, got %q", k.Source)
		}
		if !slices.Contains([]string{APIKeyBearer, APIKeyBasic, APIKeyCustom}, k.AuthorizationType) {
			v.add("apiKey.authorization_type", "want bearer, basic or custom, got %q", k.AuthorizationType)
		}
		if k.CustomHeader != "" && !validHeaderName(k.CustomHeader) {
			v.add("apiKey.custom_header", "header name must be a non-empty HTTP token of at most %d bytes", maxHeaderNameLength)
		}
		if len(k.Key) > MaxHeaderValueLen || strings.ContainsAny(k.Key, "\r\n\x00") {
			v.add("apiKey.key", "longer than %d bytes or contains CR, LF or NUL", MaxHeaderValueLen)
		}
		if user && k.Source == APIKeySourceAdmin {
			v.add("apiKey.source", "admin keys belong to the app config; a user-scope server sets its key with source: user")
		}
	}
	if cfg.OBO != nil {
		switch {
		case transport != TransportSSE && transport != TransportStreamableHTTP:
			v.add("obo", "only for sse and streamable-http servers")
		case cfg.OBO.Scopes == "":
			v.add("obo.scopes", "must not be empty")
		}
	}
}

func (v *validator) positive(field string, ms, limit int64) {
	switch {
	case ms < 0:
		v.add(field, "must be a positive number of milliseconds, got %d", ms)
	case ms > limit:
		v.add(field, "at most %d ms, got %d", limit, ms)
	}
}

// proxy checks a proxy URL: http, https, socks or socks5, or (app scope) one ${VAR}.
func (v *validator) proxy(raw string) {
	if IsPlaceholder(strings.TrimSpace(raw)) {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		v.add("proxy", "not a valid proxy URL")
		return
	}
	if !slices.Contains([]string{"http", "https", "socks", "socks5"}, strings.ToLower(u.Scheme)) {
		v.add("proxy", "proxy URL must use http://, https://, socks:// or socks5://")
	}
}

func (v *validator) oauth(o OAuthConfig, user bool) {
	for _, f := range []struct{ name, val string }{
		{"oauth.authorization_url", o.AuthorizationURL}, {"oauth.token_url", o.TokenURL},
		{"oauth.redirect_uri", o.RedirectURI}, {"oauth.revocation_endpoint", o.RevocationEndpoint},
	} {
		if f.val == "" || !user && IsPlaceholder(strings.TrimSpace(f.val)) {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || !u.IsAbs() || len(f.val) > MaxURLLen {
			v.add(f.name, "not a valid URL")
		}
	}
	if o.ClientSecret != "" && o.ClientID == "" {
		v.add("oauth.client_secret", "OAuth client_secret requires client_id")
	}
	if o.ClientID != "" && o.ClientSecret != "" && (o.AuthorizationURL == "" || o.TokenURL == "") {
		v.add("oauth.client_secret", "OAuth client_secret with client_id requires both authorization_url and token_url")
	}
	if m := o.TokenExchangeMethod; m != "" && m != "default_post" && m != "basic_auth_header" {
		v.add("oauth.token_exchange_method", "want default_post or basic_auth_header, got %q", m)
	}
	if o.Audience != nil && *o.Audience == "" {
		v.add("oauth.audience", "must not be empty")
	}
	if user && (o.Audience != nil || o.ForwardAudienceOnRefresh != nil || o.SendResourceParameter != nil) {
		v.add("oauth", "audience, forward_audience_on_refresh and send_resource_parameter are for app-scope servers only")
	}
}

// ignoredFieldWarnings names the fields cfg sets that its transport does not use
// (LibreChat drops them too).
func ignoredFieldWarnings(name string, cfg ServerConfig) []Problem {
	t := cfg.TransportType()
	var out []Problem
	warn := func(field string) {
		out = append(out, Problem{Server: name, Field: field, Reason: "not used by " + t + " servers (ignored)", Warning: true})
	}
	remote := t == TransportSSE || t == TransportStreamableHTTP
	if t == TransportStdio && cfg.URL != "" {
		warn("url")
	}
	if t != TransportStdio {
		for _, f := range []struct {
			name string
			set  bool
		}{{"command", cfg.Command != ""}, {"args", len(cfg.Args) > 0}, {"env", len(cfg.Env) > 0}, {"cwd", cfg.Cwd != ""}, {"stderr", cfg.Stderr != nil}} {
			if f.set {
				warn(f.name)
			}
		}
	}
	if !remote {
		for _, f := range []struct {
			name string
			set  bool
		}{{"headers", len(cfg.Headers) > 0 && t == TransportStdio}, {"requestHeaders", len(cfg.RequestHeaders) > 0}, {"proxy", cfg.Proxy != ""}} {
			if f.set {
				warn(f.name)
			}
		}
	}
	slices.SortFunc(out, func(a, b Problem) int { return strings.Compare(a.Field, b.Field) })
	return out
}
