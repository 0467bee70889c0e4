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
)

// register picks the client: pre-registered, else the client ID metadata document
// URL when the AS supports it, else dynamic registration (RFC 7591).
func (c *Client) register(ctx context.Context, d *Discovery, pre *Registration) (*Registration, error) {
	if pre != nil && pre.ClientID != "" {
		r := *pre
		if r.AuthMethod == "" {
			r.AuthMethod = pickAuthMethod(d.Server.TokenEndpointAuthMethods, r.ClientSecret != "")
		}
		return &r, nil
	}
	if d.Server.ClientIDMetadataDocument && isHTTPSURL(c.ClientMetadataURL) {
		return &Registration{ClientID: c.ClientMetadataURL, AuthMethod: AuthNone}, nil
	}
	if d.Server.RegistrationEndpoint == "" {
		return nil, ErrNoRegistration
	}
	if c.Registrations != nil {
		if r, err := c.Registrations.Registration(ctx, d.Server.Issuer); err != nil {
			return nil, err
		} else if r != nil {
			return r, nil
		}
	}
	want := pickAuthMethod(d.Server.TokenEndpointAuthMethods, true)
	appType := c.ApplicationType
	if appType == "" {
		appType = "web"
	}
	body, _ := json.Marshal(map[string]any{
		"client_name": c.clientName(), "redirect_uris": []string{c.RedirectURL}, "application_type": appType,
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": want,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Server.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRegistration, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: register: %v", ErrTransient, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: registration answered HTTP %d", ErrNoRegistration, resp.StatusCode)
	}
	var r Registration
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetadata)).Decode(&r); err != nil || r.ClientID == "" {
		return nil, fmt.Errorf("%w: registration response: %v", ErrNoRegistration, errors.Join(err, errors.New("no client_id")))
	}
	if r.AuthMethod == "" {
		r.AuthMethod = pickAuthMethod(d.Server.TokenEndpointAuthMethods, r.ClientSecret != "")
	}
	if c.Registrations != nil {
		if err := c.Registrations.SaveRegistration(ctx, d.Server.Issuer, r); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// pickAuthMethod: with a secret, client_secret_basic if offered (the RFC 8414
// default when none is listed), else client_secret_post; without one, none.
func pickAuthMethod(supported []string, hasSecret bool) string {
	if !hasSecret {
		return AuthNone
	}
	if len(supported) == 0 || slices.Contains(supported, AuthBasic) {
		return AuthBasic
	}
	if slices.Contains(supported, AuthPost) {
		return AuthPost
	}
	return AuthNone
}

func (c *Client) clientName() string {
	if c.ClientName != "" {
		return c.ClientName
	}
	return "mcpes"
}

func isHTTPSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.Path != "" && u.Path != "/"
}

// ClientMetadata is the client ID metadata document mcpes serves at
// ClientMetadataURL (draft-ietf-oauth-client-id-metadata-document).
func (c *Client) ClientMetadata() map[string]any {
	return map[string]any{
		"client_id": c.ClientMetadataURL, "client_name": c.clientName(), "redirect_uris": []string{c.RedirectURL},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": AuthNone, "application_type": c.ApplicationType,
	}
}
