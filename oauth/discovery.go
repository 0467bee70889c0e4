package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxMetadata bounds a metadata or token response body.
const maxMetadata = 1 << 20

// ResourceMetadata is the protected-resource metadata (RFC 9728) fields used.
type ResourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported,omitempty"`
}

// ServerMetadata is the authorization-server metadata (RFC 8414 / OpenID) fields used.
type ServerMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RegistrationEndpoint          string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint            string   `json:"revocation_endpoint,omitempty"`
	ScopesSupported               []string `json:"scopes_supported,omitempty"`
	GrantTypesSupported           []string `json:"grant_types_supported,omitempty"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported,omitempty"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	ClientIDMetadataDocument      bool     `json:"client_id_metadata_document_supported,omitempty"`
	IssParameterSupported         bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// Discovery is what Discover found for one MCP server.
type Discovery struct {
	// Resource is the resource indicator sent on every request (RFC 8707).
	Resource string
	// ResourceScopes are the PRM's scopes_supported.
	ResourceScopes []string
	// Server is the authorization server's metadata.
	Server ServerMetadata
	// Legacy is set when the server has no protected-resource metadata and the
	// 2025-03-26 rules (metadata or default endpoints at the server's origin) applied.
	Legacy bool
}

// Discover finds the authorization server of the MCP server at serverURL: the
// protected-resource metadata from the challenge's resource_metadata, else at the
// path-based well-known URI, else at the root one; then the authorization-server
// metadata in the spec's order, whose issuer must equal the authorization server.
// Without protected-resource metadata it falls back to the 2025-03-26 rules.
func (c *Client) Discover(ctx context.Context, serverURL string, ch Challenge) (*Discovery, error) {
	su, err := url.Parse(serverURL)
	if err != nil || su.Host == "" || (su.Scheme != "https" && su.Scheme != "http") {
		return nil, fmt.Errorf("%w: server URL %q", ErrDiscovery, serverURL)
	}
	prm, err := c.resourceMetadata(ctx, su, ch)
	if err != nil {
		return nil, err
	}
	if prm == nil {
		return c.legacyDiscover(ctx, su)
	}
	if !resourceCovers(prm.Resource, su) {
		return nil, fmt.Errorf("%w: resource %q, server %s", ErrResourceMismatch, prm.Resource, su.Redacted())
	}
	if len(prm.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("%w: protected resource metadata names no authorization server", ErrDiscovery)
	}
	issuer := prm.AuthorizationServers[0]
	md, err := c.serverMetadata(ctx, issuer)
	if err != nil {
		return nil, err
	}
	if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return nil, fmt.Errorf("%w: fetched for %q, says %q", ErrIssuerMismatch, issuer, md.Issuer)
	}
	if err := checkServer(md); err != nil {
		return nil, err
	}
	return &Discovery{Resource: prm.Resource, ResourceScopes: prm.ScopesSupported, Server: *md}, nil
}

// discoverPinned is Discover with the client's pinned endpoints in place of the
// discovered ones. With the authorization and token endpoints both pinned only the
// resource is looked up (the protected-resource metadata's, else the server URL);
// the issuer stays unknown.
func (c *Client) discoverPinned(ctx context.Context, serverURL string, ch Challenge) (*Discovery, error) {
	p := c.Pinned
	var d *Discovery
	if p.Authorization == "" || p.Token == "" {
		var err error
		if d, err = c.Discover(ctx, serverURL, ch); err != nil {
			return nil, err
		}
	} else {
		su, err := url.Parse(serverURL)
		if err != nil || su.Host == "" || (su.Scheme != "https" && su.Scheme != "http") {
			return nil, fmt.Errorf("%w: server URL %q", ErrDiscovery, serverURL)
		}
		d = &Discovery{Resource: canonicalResource(su), Server: ServerMetadata{CodeChallengeMethodsSupported: []string{"S256"}}}
		prm, err := c.resourceMetadata(ctx, su, ch)
		if err != nil {
			return nil, err
		}
		if prm != nil {
			if !resourceCovers(prm.Resource, su) {
				return nil, fmt.Errorf("%w: resource %q, server %s", ErrResourceMismatch, prm.Resource, su.Redacted())
			}
			d.Resource, d.ResourceScopes = prm.Resource, prm.ScopesSupported
		}
	}
	for dst, v := range map[*string]string{&d.Server.AuthorizationEndpoint: p.Authorization,
		&d.Server.TokenEndpoint: p.Token, &d.Server.RevocationEndpoint: p.Revocation} {
		if v != "" {
			*dst = v
		}
	}
	if err := checkServer(&d.Server); err != nil {
		return nil, err
	}
	return d, nil
}

// resourceMetadata returns the PRM, or nil when the server publishes none.
func (c *Client) resourceMetadata(ctx context.Context, su *url.URL, ch Challenge) (*ResourceMetadata, error) {
	var candidates []string
	if ch.ResourceMetadata != "" {
		candidates = append(candidates, ch.ResourceMetadata)
	}
	origin := su.Scheme + "://" + su.Host
	if p := strings.TrimSuffix(su.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, origin+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin+"/.well-known/oauth-protected-resource")
	for _, u := range candidates {
		var prm ResourceMetadata
		ok, err := c.getJSON(ctx, u, &prm)
		if err != nil {
			return nil, err
		}
		if ok && prm.Resource != "" {
			return &prm, nil
		}
		if ok && u == ch.ResourceMetadata {
			return nil, fmt.Errorf("%w: resource metadata at %s has no resource", ErrDiscovery, u)
		}
	}
	return nil, nil
}

// serverMetadata tries the well-known URIs of an issuer in the spec's order.
func (c *Client) serverMetadata(ctx context.Context, issuer string) (*ServerMetadata, error) {
	iu, err := url.Parse(issuer)
	if err != nil || iu.Host == "" || (iu.Scheme != "https" && iu.Scheme != "http") {
		return nil, fmt.Errorf("%w: authorization server %q", ErrDiscovery, issuer)
	}
	origin := iu.Scheme + "://" + iu.Host
	p := strings.TrimSuffix(iu.EscapedPath(), "/")
	var candidates []string
	if p != "" {
		candidates = []string{origin + "/.well-known/oauth-authorization-server" + p,
			origin + "/.well-known/openid-configuration" + p, origin + p + "/.well-known/openid-configuration"}
	} else {
		candidates = []string{origin + "/.well-known/oauth-authorization-server", origin + "/.well-known/openid-configuration"}
	}
	for _, u := range candidates {
		var md ServerMetadata
		ok, err := c.getJSON(ctx, u, &md)
		if err != nil {
			return nil, err
		}
		if ok {
			return &md, nil
		}
	}
	return nil, fmt.Errorf("%w: no authorization server metadata for %s", ErrDiscovery, issuer)
}

// legacyDiscover applies the 2025-03-26 rules: metadata at the server origin's
// well-known URI, else the default endpoints there.
func (c *Client) legacyDiscover(ctx context.Context, su *url.URL) (*Discovery, error) {
	origin := su.Scheme + "://" + su.Host
	d := &Discovery{Resource: canonicalResource(su), Legacy: true}
	var md ServerMetadata
	ok, err := c.getJSON(ctx, origin+"/.well-known/oauth-authorization-server", &md)
	if err != nil {
		return nil, err
	}
	if !ok {
		md = ServerMetadata{Issuer: origin, AuthorizationEndpoint: origin + "/authorize", TokenEndpoint: origin + "/token",
			RegistrationEndpoint: origin + "/register", CodeChallengeMethodsSupported: []string{"S256"}}
	}
	if err := checkServer(&md); err != nil {
		return nil, err
	}
	d.Server = md
	return d, nil
}

// checkServer refuses metadata without PKCE S256 or without the endpoints needed.
func checkServer(md *ServerMetadata) error {
	if !slices.Contains(md.CodeChallengeMethodsSupported, "S256") {
		return fmt.Errorf("%w (%s advertises %v)", ErrNoPKCE, md.Issuer, md.CodeChallengeMethodsSupported)
	}
	for _, e := range []string{md.AuthorizationEndpoint, md.TokenEndpoint} {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%w: endpoint %q", ErrDiscovery, e)
		}
	}
	return nil
}

// canonicalResource is the server URL without fragment and query, as RFC 8707 wants.
func canonicalResource(su *url.URL) string {
	u := *su
	u.Fragment, u.RawQuery, u.RawFragment = "", "", ""
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// resourceCovers reports whether the PRM resource identifies the server: same
// origin, and the server's path is the resource's path or below it.
func resourceCovers(resource string, su *url.URL) bool {
	ru, err := url.Parse(resource)
	if err != nil || ru.Fragment != "" || !strings.EqualFold(ru.Scheme, su.Scheme) || !strings.EqualFold(ru.Host, su.Host) {
		return false
	}
	rp, sp := strings.TrimSuffix(ru.Path, "/"), strings.TrimSuffix(su.Path, "/")
	return rp == "" || sp == rp || strings.HasPrefix(sp, rp+"/")
}

// getJSON GETs u into v. It reports false (no error) for 4xx answers, so the next
// candidate URI is tried, and an error for anything that is neither.
func (c *Client) getJSON(ctx context.Context, u string, v any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrDiscovery, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	resp, err := c.http().Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: GET %s: %v", ErrDiscovery, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%w: GET %s: HTTP %d", ErrDiscovery, u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadata)).Decode(v); err != nil {
		return false, fmt.Errorf("%w: GET %s: %v", ErrDiscovery, u, err)
	}
	return true, nil
}
