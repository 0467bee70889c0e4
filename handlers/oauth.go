package handlers

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"

	"github.com/mcpes/mcpes/oauth"
)

// OAuthBroker runs owners' authorizations of OAuth servers (*oauth.Broker
// implements it).
type OAuthBroker interface {
	Authorize(ctx context.Context, actor, owner, server string) (string, error)
	Callback(ctx context.Context, q url.Values) (owner, server string, err error)
	Revoke(ctx context.Context, actor, owner, server string) (bool, error)
}

// OAuth routes (mounted when Deps.OAuth is set):
//
//	POST   /v1/servers/{name}/authorize      {"server", "url"}: send the owner there
//	DELETE /v1/servers/{name}/authorization  {"server", "revoked": true, "authorizationServerNotified"}
//	GET    /v1/oauth/callback                the authorization server's redirect (no token: the state names the flow)
//	GET    /v1/oauth/client-metadata.json    mcpes's client ID metadata document
const (
	CallbackPath       = "/v1/oauth/callback"
	ClientMetadataPath = "/v1/oauth/client-metadata.json"
)

func (a *api) mountOAuth() {
	if a.OAuth == nil {
		return
	}
	a.mux.Handle("POST /v1/servers/{name}/authorize", a.route(a.authorize))
	a.mux.Handle("DELETE /v1/servers/{name}/authorization", a.route(a.revokeAuthorization))
	a.mux.HandleFunc("GET "+CallbackPath, a.oauthCallback)
	if a.ClientMetadata != nil {
		a.mux.HandleFunc("GET "+ClientMetadataPath, func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, a.ClientMetadata)
		})
	}
}

// AuthorizeResponse is the body of POST /v1/servers/{name}/authorize.
type AuthorizeResponse struct {
	Server string `json:"server"`
	URL    string `json:"url"`
}

func (a *api) authorize(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	if owner == "" {
		return fmt.Errorf("%w: authorization is per owner: use an owner token or ?owner=ID", ErrInvalidRequest)
	}
	if _, view, _ := a.Servers.Effective(owner, name); !view.Found {
		return notFound(name)
	}
	u, err := a.OAuth.Authorize(r.Context(), id.Actor(), owner, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AuthorizeResponse{Server: name, URL: u})
	return nil
}

func (a *api) revokeAuthorization(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	told, err := a.OAuth.Revoke(r.Context(), id.Actor(), owner, name)
	if errors.Is(err, oauth.ErrNoGrant) {
		return notFound(name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": name, "revoked": true, "authorizationServerNotified": told})
	return nil
}

// oauthCallback completes a flow. It needs no bearer token: the unguessable state,
// bound at Start to the owner who began the flow, names it, and is good once.
func (a *api) oauthCallback(w http.ResponseWriter, r *http.Request) {
	_, server, err := a.OAuth.Callback(r.Context(), r.URL.Query())
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, oauth.ErrState) || errors.Is(err, oauth.ErrIssuer) || errors.Is(err, oauth.ErrDenied) {
			status = http.StatusBadRequest
		}
		a.Logger.Warn("oauth callback failed", "status", status, "err", err)
		writePage(w, status, "Authorization failed", "mcpes could not complete the authorization. Start it again from your client.")
		return
	}
	writePage(w, http.StatusOK, "Authorized", "mcpes may now use "+server+" for you. You can close this window.")
}

func writePage(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>%s</title><h1>%s</h1><p>%s</p>\n", html.EscapeString(title),
		html.EscapeString(title), html.EscapeString(msg))
}
