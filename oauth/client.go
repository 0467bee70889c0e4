package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Token endpoint client authentication methods.
const (
	AuthNone   = "none"
	AuthBasic  = "client_secret_basic"
	AuthPost   = "client_secret_post"
	offlineScp = "offline_access"
)

// Client is the OAuth client of one mcpes (or of the conformance command). It
// holds no per-user state: Begin returns a Pending flow and Finish a Grant, both
// values the caller stores (sealed) where it wants.
type Client struct {
	// HTTP makes every request (discovery, registration, token, revocation). It
	// must not follow redirects; nil uses a client that does not.
	HTTP *http.Client
	// RedirectURL is the callback the authorization server sends the browser to.
	RedirectURL string
	// ClientMetadataURL, an https URL, is used as the client_id when the
	// authorization server supports client ID metadata documents.
	ClientMetadataURL string
	// ClientName is sent in dynamic registration.
	ClientName string
	// ApplicationType is sent in dynamic registration: "web" for a service whose
	// callback is a public URL, "native" for a loopback callback.
	ApplicationType string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registrations, when set, keeps dynamic registrations per authorization server,
	// so one client serves every owner instead of one registration per flow.
	Registrations RegistrationCache
	// Headers are added to every request to the authorization server (discovery,
	// registration, token, refresh, revocation): a server's oauth_headers. Set them
	// on a copy of the Client for that server; a header the request already
	// carries (e.g. client authentication) is kept.
	Headers http.Header
	// Pinned endpoints take the place of discovered ones (the oauth block's
	// authorization_url, token_url and revocation_endpoint). With both the
	// authorization and the token endpoint pinned, no authorization-server
	// metadata is fetched. Set them on a copy of the Client for that server.
	Pinned Endpoints
}

// RegistrationCache stores dynamic client registrations by issuer.
type RegistrationCache interface {
	Registration(ctx context.Context, issuer string) (*Registration, error)
	SaveRegistration(ctx context.Context, issuer string, r Registration) error
}

// Registration is a client pre-registered with an authorization server (the
// LibreChat `oauth` block), or the result of dynamic registration.
type Registration struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// AuthMethod is the token endpoint auth method; empty picks one from the metadata.
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
}

// Pending is an authorization in progress: what Finish needs besides the callback.
// It holds the PKCE verifier and client secret: store it only sealed.
type Pending struct {
	State     string       `json:"state"`
	Verifier  string       `json:"verifier"`
	AuthURL   string       `json:"-"`
	Resource  string       `json:"resource"`
	Scope     string       `json:"scope,omitempty"`
	Issuer    string       `json:"issuer"`
	IssParam  bool         `json:"issParam,omitempty"`
	Legacy    bool         `json:"legacy,omitempty"`
	Client    Registration `json:"client"`
	Endpoints Endpoints    `json:"endpoints"`
	// Guarded is set for a user-scope server: every later request of the flow and
	// its grant goes through the SSRF-guarded HTTP client.
	Guarded bool `json:"guarded,omitempty"`
	// Pinned is set when the configuration named the authorization and token
	// endpoints: there is no issuer to compare the callback's iss with.
	Pinned bool `json:"pinned,omitempty"`
}

// Endpoints are the authorization server's endpoints a grant keeps using.
type Endpoints struct {
	Authorization string `json:"authorization"`
	Token         string `json:"token"`
	Revocation    string `json:"revocation,omitempty"`
}

// Grant is what an owner holds for one server after authorizing: tokens and what
// refreshing and revoking them needs. Store it only sealed.
type Grant struct {
	// ID names this authorization (not its refreshes) in events and decisions.
	ID           string       `json:"id"`
	AccessToken  string       `json:"access_token"`
	RefreshToken string       `json:"refresh_token,omitempty"`
	Expiry       time.Time    `json:"expiry,omitzero"`
	Scope        string       `json:"scope,omitempty"`
	Resource     string       `json:"resource"`
	Issuer       string       `json:"issuer"`
	Client       Registration `json:"client"`
	Endpoints    Endpoints    `json:"endpoints"`
	// Generation counts refreshes; it lets a refresher detect that another one won.
	Generation uint64 `json:"generation"`
	Guarded    bool   `json:"guarded,omitempty"`
}

// Valid reports whether the access token is set and not expired at now (with skew).
func (g *Grant) Valid(now time.Time) bool {
	return g != nil && g.AccessToken != "" && (g.Expiry.IsZero() || now.Add(10*time.Second).Before(g.Expiry))
}

func (c *Client) http() *http.Client {
	hc := c.HTTP
	if hc == nil {
		hc = noRedirects
	}
	if len(c.Headers) == 0 {
		return hc
	}
	w := *hc
	w.Transport = headerTransport{base: hc.Transport, headers: c.Headers}
	return &w
}

// headerTransport adds headers a request does not carry yet.
type headerTransport struct {
	base    http.RoundTripper
	headers http.Header
}

func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	for k, vs := range t.headers {
		if r.Header.Get(k) == "" {
			r.Header[http.CanonicalHeaderKey(k)] = slices.Clone(vs)
		}
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

var noRedirects = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Begin discovers, registers when needed (pre-registered client → client ID
// metadata document → dynamic registration) and returns the pending flow with the
// URL to send the user to. scope overrides the scope selection (used for step-up);
// empty selects challenge → resource scopes_supported → none.
func (c *Client) Begin(ctx context.Context, serverURL string, ch Challenge, pre *Registration, scope string) (*Pending, error) {
	d, err := c.discoverPinned(ctx, serverURL, ch)
	if err != nil {
		return nil, err
	}
	reg, err := c.register(ctx, d, pre)
	if err != nil {
		return nil, err
	}
	if scope == "" {
		scope = selectScope(ch, d)
	}
	p := &Pending{State: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier(), Resource: d.Resource,
		Scope: scope, Issuer: d.Server.Issuer, IssParam: d.Server.IssParameterSupported, Legacy: d.Legacy, Client: *reg,
		Pinned: c.Pinned.Authorization != "" && c.Pinned.Token != "",
		Endpoints: Endpoints{Authorization: d.Server.AuthorizationEndpoint, Token: d.Server.TokenEndpoint,
			Revocation: d.Server.RevocationEndpoint}}
	p.AuthURL = p.config(c.RedirectURL).AuthCodeURL(p.State, oauth2.S256ChallengeOption(p.Verifier),
		oauth2.SetAuthURLParam("resource", p.Resource))
	return p, nil
}

// selectScope: the challenge's scope, else the resource's scopes_supported, else
// none; offline_access is added when the authorization server offers it and refresh.
func selectScope(ch Challenge, d *Discovery) string {
	scopes := strings.Fields(ch.Scope)
	if len(scopes) == 0 {
		scopes = slices.Clone(d.ResourceScopes)
	}
	if len(scopes) > 0 && slices.Contains(d.Server.ScopesSupported, offlineScp) && !slices.Contains(scopes, offlineScp) &&
		(len(d.Server.GrantTypesSupported) == 0 || slices.Contains(d.Server.GrantTypesSupported, "refresh_token")) {
		scopes = append(scopes, offlineScp)
	}
	return strings.Join(scopes, " ")
}

// config is the x/oauth2 view of a flow.
func (p *Pending) config(redirect string) *oauth2.Config {
	return oauthConfig(p.Client, p.Endpoints, redirect, p.Scope)
}

func oauthConfig(r Registration, e Endpoints, redirect, scope string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if r.AuthMethod == AuthBasic {
		style = oauth2.AuthStyleInHeader
	}
	secret := r.ClientSecret
	if r.AuthMethod == AuthNone {
		secret = ""
	}
	return &oauth2.Config{ClientID: r.ClientID, ClientSecret: secret, RedirectURL: redirect, Scopes: strings.Fields(scope),
		Endpoint: oauth2.Endpoint{AuthURL: e.Authorization, TokenURL: e.Token, AuthStyle: style}}
}

// Finish completes a flow from the callback's query: it checks the state, the
// error and iss parameters (RFC 9207), then exchanges the code with the verifier
// and the resource. Returns ErrState, ErrDenied, ErrIssuer, ErrInvalidGrant or
// ErrTransient.
func (c *Client) Finish(ctx context.Context, p *Pending, q url.Values) (*Grant, error) {
	if q.Get("state") == "" || q.Get("state") != p.State {
		return nil, ErrState
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("%w: %s", ErrDenied, clip(e, 64))
	}
	// A flow with pinned endpoints knows no issuer: there is one authorization
	// server, the one the configuration names, so no mix-up to detect.
	if iss := q.Get("iss"); !p.Pinned && (iss != "" || p.IssParam) {
		if strings.TrimSuffix(iss, "/") != strings.TrimSuffix(p.Issuer, "/") {
			return nil, ErrIssuer
		}
	}
	code := q.Get("code")
	if code == "" {
		return nil, fmt.Errorf("%w: no code", ErrDenied)
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http())
	tok, err := p.config(c.RedirectURL).Exchange(ctx, code, oauth2.VerifierOption(p.Verifier),
		oauth2.SetAuthURLParam("resource", p.Resource))
	if err != nil {
		return nil, classify(err)
	}
	g := &Grant{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, Scope: p.Scope,
		Resource: p.Resource, Issuer: p.Issuer, Client: p.Client, Endpoints: p.Endpoints, Guarded: p.Guarded}
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		g.Scope = s
	}
	return g, nil
}

// classify maps an x/oauth2 error to ErrInvalidGrant (the AS refused) or
// ErrTransient (network, 5xx).
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil && re.Response.StatusCode >= 500 {
			return fmt.Errorf("%w: HTTP %d", ErrTransient, re.Response.StatusCode)
		}
		return fmt.Errorf("%w: %s", ErrInvalidGrant, clip(re.ErrorCode, 64))
	}
	return fmt.Errorf("%w: %v", ErrTransient, err)
}

// Refresh returns the grant with new tokens from the refresh token, sending the
// resource. A rotated refresh token replaces the old one; an unrotated one is kept.
// Returns ErrInvalidGrant when the AS refuses it, ErrTransient when it is unreachable.
func (c *Client) Refresh(ctx context.Context, g *Grant) (*Grant, error) {
	if g.RefreshToken == "" {
		return nil, fmt.Errorf("%w: no refresh token", ErrInvalidGrant)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.RefreshToken}, "resource": {g.Resource}}
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Scope        string `json:"scope"`
	}
	if err := c.post(ctx, g.Endpoints.Token, g.Client, form, &out); err != nil {
		return nil, err
	}
	if out.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access_token in refresh response", ErrTransient)
	}
	n := *g
	n.AccessToken, n.Generation = out.AccessToken, g.Generation+1
	if out.RefreshToken != "" {
		n.RefreshToken = out.RefreshToken
	}
	n.Expiry = time.Time{}
	if out.ExpiresIn > 0 {
		n.Expiry = c.now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	if out.Scope != "" {
		n.Scope = out.Scope
	}
	return &n, nil
}

// Revoke tells the authorization server to revoke the grant's tokens (RFC 7009)
// when it has a revocation endpoint. It reports whether the AS was told.
func (c *Client) Revoke(ctx context.Context, g *Grant) (bool, error) {
	if g.Endpoints.Revocation == "" {
		return false, nil
	}
	for hint, tok := range map[string]string{"refresh_token": g.RefreshToken, "access_token": g.AccessToken} {
		if tok == "" {
			continue
		}
		if err := c.post(ctx, g.Endpoints.Revocation, g.Client, url.Values{"token": {tok}, "token_type_hint": {hint}}, nil); err != nil {
			return false, err
		}
	}
	return true, nil
}

// post sends a form to a token or revocation endpoint with the client's auth
// method and decodes a JSON answer into out (when not nil).
func (c *Client) post(ctx context.Context, endpoint string, r Registration, form url.Values, out any) error {
	switch r.AuthMethod {
	case AuthPost:
		form.Set("client_id", r.ClientID)
		form.Set("client_secret", r.ClientSecret)
	case AuthBasic:
	default:
		form.Set("client_id", r.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTransient, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if r.AuthMethod == AuthBasic {
		req.SetBasicAuth(url.QueryEscape(r.ClientID), url.QueryEscape(r.ClientSecret))
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTransient, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrTransient, err)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%w: HTTP %d", ErrTransient, resp.StatusCode)
	case resp.StatusCode >= 400:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("%w: %s (HTTP %d)", ErrInvalidGrant, clip(e.Error, 64), resp.StatusCode)
	}
	if out == nil || len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: token response: %v", ErrTransient, err)
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
