package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Target is the server an owner authorizes: its name, URL and scope, and the
// pre-registered client for it, if any.
type Target struct {
	Owner, Server string
	URL           string
	Scope         domain.Scope
	PreRegistered *Registration
	// OAuthScope, when set, is the scope to ask for (the config's oauth.scope).
	OAuthScope string
	// Headers are sent on every request to the authorization server (the config's
	// oauth_headers, resolved).
	Headers http.Header
	// Pinned are the config's oauth.authorization_url, token_url and
	// revocation_endpoint, which take the place of discovered endpoints.
	Pinned Endpoints
}

// ErrNoTarget is returned by Authorize for a server the owner cannot see, or one
// without a plain URL to authorize against.
var ErrNoTarget = errors.New("no server to authorize")

// Authorize starts an authorization of the owner's effective config of server
// (Broker.Servers) and returns the URL to send the owner to.
func (b *Broker) Authorize(ctx context.Context, actor, owner, server string) (string, error) {
	t, err := b.target(owner, server)
	if err != nil {
		return "", err
	}
	return b.Start(ctx, actor, t)
}

// target is the Target of the owner's effective config of server.
func (b *Broker) target(owner, server string) (Target, error) {
	if b.Servers == nil {
		return Target{}, ErrNoTarget
	}
	st, ok := b.Servers(owner, server)
	if !ok {
		return Target{}, fmt.Errorf("%w: %s", ErrNoTarget, server)
	}
	u := st.Config.URL
	if u == "" || strings.Contains(u, "${") {
		return Target{}, fmt.Errorf("%w: server %s has no plain URL", ErrNoTarget, server)
	}
	t := Target{Owner: owner, Server: server, URL: u, Scope: st.Scope}
	h, err := b.oauthHeaders(st)
	if err != nil {
		return Target{}, fmt.Errorf("server %s: %w", server, err)
	}
	t.Headers = h
	if blk, ok := st.Config.OAuthClient(); ok {
		t.OAuthScope = blk.Scope
		for dst, v := range map[*string]string{&t.Pinned.Authorization: blk.AuthorizationURL,
			&t.Pinned.Token: blk.TokenURL, &t.Pinned.Revocation: blk.RevocationEndpoint} {
			if *dst, err = b.resolve(st.Scope, v); err != nil {
				return Target{}, fmt.Errorf("server %s: oauth endpoint: %w", server, err)
			}
		}
		if blk.ClientID != "" {
			secret, err := b.resolve(st.Scope, blk.ClientSecret)
			if err != nil {
				return Target{}, fmt.Errorf("server %s: oauth.client_secret: %w", server, err)
			}
			t.PreRegistered = &Registration{ClientID: blk.ClientID, ClientSecret: secret}
		}
	}
	return t, nil
}

// oauthHeaders resolves a config's oauth_headers (secret references, ${VAR} in the
// app scope). The values are secrets: they go on the wire and nowhere else.
func (b *Broker) oauthHeaders(st domain.ServerState) (http.Header, error) {
	if len(st.Config.OAuthHeaders) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for k, v := range st.Config.OAuthHeaders {
		val, err := b.resolve(st.Scope, v)
		if err != nil {
			return nil, fmt.Errorf("oauth_headers %s: %w", k, err)
		}
		h.Set(k, val)
	}
	return h, nil
}

// resolve turns the oauth block's client_secret into its value: a secret reference
// from the store, a ${VAR} placeholder (app scope only) from the environment.
func (b *Broker) resolve(scope domain.Scope, v string) (string, error) {
	switch {
	case v == "":
		return "", nil
	case domain.IsSecretRef(v):
		if b.Secret == nil {
			return "", ErrNoTarget
		}
		return b.Secret(v)
	case domain.IsPlaceholder(v):
		if !scope.IsApp() || b.Env == nil {
			return "", fmt.Errorf("%w: placeholder outside the app scope", ErrNoTarget)
		}
		val, ok := b.Env(v[2 : len(v)-1])
		if !ok {
			return "", fmt.Errorf("%w: %s is not set", ErrNoTarget, v)
		}
		return val, nil
	}
	return v, nil
}

// MaxPendingFlows bounds the flows one owner may have started and not finished
// within FlowTTL, so no caller can fill the data file or the log with them.
const MaxPendingFlows = 16

// ErrTooManyFlows is returned by Start when the owner has MaxPendingFlows pending.
var ErrTooManyFlows = errors.New("too many authorizations in progress for this owner")

// admitFlow counts a new flow of owner against MaxPendingFlows.
func (b *Broker) admitFlow(owner string, now, expires time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[string][]time.Time{}
	}
	live := b.pending[owner][:0]
	for _, t := range b.pending[owner] {
		if now.Before(t) {
			live = append(live, t)
		}
	}
	if len(live) >= MaxPendingFlows {
		b.pending[owner] = live
		return false
	}
	b.pending[owner] = append(live, expires)
	return true
}

// PurgeFlows deletes the stored flows whose time ran out and reports how many.
func (b *Broker) PurgeFlows(ctx context.Context) (int, error) {
	var refs []string
	if err := b.Vault.RangeSecrets(ctx, func(ref string, _ []byte) error {
		if strings.HasPrefix(ref, flowPrefix) {
			refs = append(refs, ref)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	n, now := 0, b.now()
	for _, ref := range refs {
		err := b.Vault.Update(ctx, ref, func(cur []byte, ok bool) ([]byte, error) {
			var rec flowRecord
			if !ok || json.Unmarshal(cur, &rec) == nil && now.Before(rec.Expires) {
				return cur, errKeep
			}
			return nil, nil
		})
		switch {
		case err == nil:
			n++
		case !errors.Is(err, errKeep):
			return n, err
		}
	}
	return n, nil
}

var errKeep = errors.New("keep")

// Start begins an authorization for t.Owner and returns the URL to send the owner
// to. The flow (state hash → owner, server, PKCE verifier) is stored sealed for
// FlowTTL and recorded as oauth.flow_started; a failure as oauth.failed.
func (b *Broker) Start(ctx context.Context, actor string, t Target) (string, error) {
	flowID := b.newID()
	c := b.client(!t.Scope.IsApp())
	fail := func(stage string, err error) (string, error) {
		b.record(ctx, actor, domain.OAuthFailed{Owner: t.Owner, Server: t.Server, FlowID: flowID, Stage: stage, Reason: err.Error()})
		return "", err
	}
	ttl := b.FlowTTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	expires := b.now().Add(ttl)
	if !b.admitFlow(t.Owner, b.now(), expires) {
		return "", ErrTooManyFlows
	}
	ch := b.probe(ctx, c.http(), t.URL) // the MCP server gets no oauth_headers
	c.Headers, c.Pinned = t.Headers, t.Pinned
	p, err := c.Begin(ctx, t.URL, ch, t.PreRegistered, t.OAuthScope)
	if err != nil {
		return fail("discovery", err)
	}
	p.Guarded = !t.Scope.IsApp()
	rec := flowRecord{Owner: t.Owner, Server: t.Server, FlowID: flowID, Expires: expires, Pending: *p}
	raw, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if err := b.Vault.Update(ctx, flowRef(p.State), func([]byte, bool) ([]byte, error) { return raw, nil }); err != nil {
		return fail("store", err)
	}
	kind := "dynamic"
	switch {
	case t.PreRegistered != nil && t.PreRegistered.ClientID != "":
		kind = "pre_registered"
	case p.Client.ClientID == c.ClientMetadataURL:
		kind = "metadata_document"
	}
	b.record(ctx, actor, domain.OAuthFlowStarted{Owner: t.Owner, Server: t.Server, FlowID: flowID, Issuer: p.Issuer,
		Scope: p.Scope, Client: kind, ExpiresAt: rec.Expires})
	return p.AuthURL, nil
}

// Callback completes the flow named by the callback's state: the flow record is
// consumed (single use), must not be expired, and its code is exchanged; the grant
// replaces any the owner held for the server. Returns the owner and server, or
// ErrState for an unknown, used or expired state (nothing recorded then, so a
// flood of forged callbacks cannot flood the log), or the exchange's error.
func (b *Broker) Callback(ctx context.Context, q url.Values) (owner, server string, err error) {
	state := q.Get("state")
	if state == "" || len(state) > 512 {
		return "", "", ErrState
	}
	var raw []byte
	err = b.Vault.Update(ctx, flowRef(state), func(cur []byte, ok bool) ([]byte, error) {
		if !ok {
			return nil, ErrState
		}
		raw = cur
		return nil, nil
	})
	if err != nil {
		return "", "", err
	}
	var rec flowRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return "", "", fmt.Errorf("%w: flow record: %v", ErrState, err)
	}
	actor := "owner:" + rec.Owner
	if rec.Owner == "" {
		actor = "admin"
	}
	fail := func(stage string, err error) (string, string, error) {
		b.record(ctx, actor, domain.OAuthFailed{Owner: rec.Owner, Server: rec.Server, FlowID: rec.FlowID, Stage: stage, Reason: err.Error()})
		return rec.Owner, rec.Server, err
	}
	if b.now().After(rec.Expires) {
		return fail("callback", fmt.Errorf("%w: flow expired", ErrState))
	}
	c, err := b.serverClient(rec.Pending.Guarded, rec.Owner, rec.Server)
	if err != nil {
		return fail("exchange", err)
	}
	g, err := c.Finish(ctx, &rec.Pending, q)
	if err != nil {
		stage := "exchange"
		if errors.Is(err, ErrState) || errors.Is(err, ErrIssuer) || errors.Is(err, ErrDenied) {
			stage = "callback"
		}
		return fail(stage, err)
	}
	g.ID = b.newID()
	k := grantKey{rec.Owner, rec.Server}
	data, err := json.Marshal(storedGrant{Owner: k.owner, Server: k.server, Grant: *g})
	if err != nil {
		return fail("store", err)
	}
	if err := b.Vault.Update(ctx, grantRef(k.owner, k.server), func([]byte, bool) ([]byte, error) { return data, nil }); err != nil {
		return fail("store", err)
	}
	// Recorded before any decision can read the grant, so every decision that
	// names it comes after it in the log (connections.ReplayDecisions checks that).
	b.record(ctx, actor, domain.OAuthCompleted{Owner: k.owner, Server: k.server, FlowID: rec.FlowID, GrantID: g.ID,
		Issuer: g.Issuer, Scope: g.Scope, ExpiresAt: g.Expiry, Refreshable: g.RefreshToken != ""})
	b.mu.Lock()
	b.init()
	b.grants[k] = g
	delete(b.backoff, k)
	b.mu.Unlock()
	b.changed(k)
	if b.OnAuthorized != nil {
		b.OnAuthorized(k.owner, k.server)
	}
	return k.owner, k.server, nil
}

// Revoke drops owner's grant for server and tells the authorization server where it
// supports revocation (RFC 7009); the grant is dropped even when telling it fails.
// It reports whether the AS was told. Returns ErrNoGrant when there is none.
func (b *Broker) Revoke(ctx context.Context, actor, owner, server string) (bool, error) {
	g := b.cached(owner, server)
	if g == nil {
		return false, ErrNoGrant
	}
	told := false
	c, err := b.serverClient(g.Guarded, owner, server)
	if err == nil {
		told, err = c.Revoke(ctx, g)
	}
	if err != nil {
		b.log().Warn("revocation at the authorization server failed; dropping the grant anyway",
			"owner", owner, "server", server, "err", err)
	}
	if err := b.dropGrant(ctx, grantKey{owner, server}, g.ID); err != nil {
		return false, err
	}
	b.record(ctx, actor, domain.TokenRevoked{Owner: owner, Server: server, GrantID: g.ID, Reason: "owner", ASNotified: told})
	return told, nil
}
