package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Record key prefixes in the credential store.
const (
	grantPrefix = domain.OAuthRecordPrefix + "grant/"
	flowPrefix  = domain.OAuthRecordPrefix + "flow/"
)

// Vault is the encrypted credential store the Broker keeps grants and flow records
// in (credentials.Store), and the log it records its events to.
type Vault interface {
	store.Store
	// Update replaces the plaintext under ref atomically (nil deletes).
	Update(ctx context.Context, ref string, fn func(cur []byte, ok bool) ([]byte, error)) error
	// RangeSecrets lists the stored records (values sealed).
	RangeSecrets(ctx context.Context, fn func(ref string, value []byte) error) error
}

// Broker is mcpes's side of per-(owner, server) OAuth: it starts flows, completes
// them at the callback, keeps each owner's grant sealed in the Vault, refreshes it
// (single-flight per owner and server, compare-and-swap of a rotated refresh token,
// proactive with jitter, backoff on transient errors, drop on invalid_grant),
// revokes it, and records each step as metadata-only events.
type Broker struct {
	// Client is the OAuth client (redirect URL, client metadata URL).
	Client *Client
	// Guarded is the HTTP client for user-scope servers (SSRF guard, no redirects).
	Guarded *http.Client
	Vault   Vault
	// Servers returns the owner's effective config of a server (found or not).
	Servers func(owner, server string) (domain.ServerState, bool)
	// Secret resolves a secret reference (the sealed oauth.client_secret of a
	// config); Env looks up ${VAR} placeholders of app configs.
	Secret func(ref string) (string, error)
	Env    func(string) (string, bool)
	// Source is the CloudEvents source of the events.
	Source string
	// OnChange is called after an owner's grant for server appeared, changed or
	// went away (connections.Manager.GrantChanged).
	OnChange func(owner, server string)
	// OnAuthorized is called after an owner completed an authorization (after
	// OnChange), e.g. to inspect a server that answers nobody without a token.
	OnAuthorized func(owner, server string)
	// RefreshBefore is how long before expiry a token is refreshed (default 60 s),
	// plus up to half of it again as jitter.
	RefreshBefore time.Duration
	// FlowTTL is how long a started flow may be completed (default 15 min).
	FlowTTL time.Duration
	Clock   func() time.Time
	Jitter  func() float64
	NewID   func() string
	Logger  *slog.Logger

	mu      sync.RWMutex
	reload  map[grantKey]bool // grants to read again from the Vault (Observe)
	wake    chan struct{}     // signals Run that reload has keys
	grants  map[grantKey]*Grant
	pending map[string][]time.Time // owner → expiry of each flow started
	backoff map[grantKey]backoffState
	stepUps map[grantKey]stepUpNote
	sf      singleflight.Group
}

type grantKey struct{ owner, server string }

type backoffState struct {
	until    time.Time
	failures int
}

// flowRecord is what a started flow stores under the hash of its state.
type flowRecord struct {
	Owner   string    `json:"owner"`
	Server  string    `json:"server"`
	FlowID  string    `json:"flowId"`
	Expires time.Time `json:"expires"`
	Pending Pending   `json:"pending"`
}

// client is the OAuth client with the guarded HTTP client for user-scope servers.
func (b *Broker) client(guarded bool) *Client {
	c := *b.Client
	c.Registrations = registrations{b}
	if guarded && b.Guarded != nil {
		c.HTTP = b.Guarded
	}
	return &c
}

// serverClient is client(guarded) with owner's oauth_headers for server (none when
// the server is gone from the configuration).
func (b *Broker) serverClient(guarded bool, owner, server string) (*Client, error) {
	c := b.client(guarded)
	if b.Servers == nil {
		return c, nil
	}
	st, ok := b.Servers(owner, server)
	if !ok {
		return c, nil
	}
	h, err := b.oauthHeaders(st)
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", server, err)
	}
	c.Headers = h
	return c, nil
}

func (b *Broker) now() time.Time {
	if b.Clock != nil {
		return b.Clock()
	}
	return time.Now()
}

func (b *Broker) newID() string {
	if b.NewID != nil {
		return b.NewID()
	}
	return uuid.Must(uuid.NewV7()).String()
}

func (b *Broker) log() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}

func grantRef(owner, server string) string {
	return grantPrefix + url.PathEscape(owner) + "/" + url.PathEscape(server)
}

func flowRef(state string) string {
	h := sha256.Sum256([]byte(state))
	return flowPrefix + hex.EncodeToString(h[:])
}

// Load reads every stored grant into memory; call it once before serving.
func (b *Broker) Load(ctx context.Context) error {
	var refs []string
	if err := b.Vault.RangeSecrets(ctx, func(ref string, _ []byte) error {
		if strings.HasPrefix(ref, grantPrefix) {
			refs = append(refs, ref)
		}
		return nil
	}); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	for _, ref := range refs {
		raw, err := b.Vault.Secret(ctx, ref)
		if err != nil {
			return fmt.Errorf("load grant: %w", err)
		}
		var g storedGrant
		if err := json.Unmarshal(raw, &g); err != nil {
			return fmt.Errorf("load grant %s: %w", ref, err)
		}
		b.grants[grantKey{g.Owner, g.Server}] = &g.Grant
	}
	return nil
}

func (b *Broker) init() {
	if b.grants == nil {
		b.grants = map[grantKey]*Grant{}
		b.backoff = map[grantKey]backoffState{}
		b.reload = map[grantKey]bool{}
		b.wake = make(chan struct{}, 1)
	}
}

// Observe is a store.Observer: a grant fact in the log (authorized, refreshed,
// dropped), which on a cluster may come from another node, makes Run read that grant
// again from the Vault and tell OnChange when it differs from the one in memory. It
// never blocks the log's writer.
func (b *Broker) Observe(evs []events.Envelope) {
	var keys []grantKey
	for _, e := range evs {
		switch e.Type {
		case events.TypeOAuthCompleted, events.TypeTokenRefreshed, events.TypeTokenRevoked:
		default:
			continue
		}
		var who struct{ Owner, Server string }
		if err := json.Unmarshal(e.Data, &who); err == nil {
			keys = append(keys, grantKey{who.Owner, who.Server})
		}
	}
	if len(keys) == 0 {
		return
	}
	b.mu.Lock()
	b.init()
	for _, k := range keys {
		b.reload[k] = true
	}
	wake := b.wake
	b.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// reloadGrants reads the grants Observe named from the Vault.
func (b *Broker) reloadGrants(ctx context.Context) {
	b.mu.Lock()
	keys := b.reload
	b.reload = map[grantKey]bool{}
	b.mu.Unlock()
	for k := range keys {
		stored, err := b.stored(ctx, k)
		if err != nil {
			b.log().Warn("read a changed grant", "owner", k.owner, "server", k.server, "err", err)
			continue
		}
		b.mu.Lock()
		cur := b.grants[k]
		same := (cur == nil) == (stored == nil) && (cur == nil || cur.ID == stored.ID &&
			cur.Generation == stored.Generation && cur.AccessToken == stored.AccessToken)
		if !same {
			if stored == nil {
				delete(b.grants, k)
			} else {
				b.grants[k] = stored
			}
			delete(b.backoff, k)
		}
		b.mu.Unlock()
		if !same {
			b.changed(k)
		}
	}
}

// storedGrant is a Grant with its owner and server, as sealed in the Vault.
type storedGrant struct {
	Owner  string `json:"owner"`
	Server string `json:"server"`
	Grant
}

func (b *Broker) cached(owner, server string) *Grant {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.grants[grantKey{owner, server}]
}

// GrantID implements connections.GrantSource: the id of owner's grant for server
// when it is usable (an unexpired token, or a refresh token), else "".
func (b *Broker) GrantID(owner, server string) string {
	g := b.cached(owner, server)
	if g == nil || (!g.Valid(b.now()) && g.RefreshToken == "") {
		return ""
	}
	return g.ID
}

// Transport implements connections.GrantSource: requests carry the owner's access
// token; a 401 forces one refresh and a retry; a 403 insufficient_scope is kept for
// StepUp (the refusal goes to the caller, which sends the owner to authorize).
func (b *Broker) Transport(owner, server string, base http.RoundTripper) http.RoundTripper {
	return &Transport{Base: base, MaxAttempts: 1,
		Token: func(ctx context.Context) (string, error) { return b.AccessToken(ctx, owner, server) },
		Authorize: func(ctx context.Context, status int, ch Challenge) (bool, error) {
			if status == http.StatusForbidden {
				b.noteStepUp(owner, server, ch)
				return false, nil
			}
			g := b.cached(owner, server)
			if status != http.StatusUnauthorized || g == nil || g.RefreshToken == "" {
				return false, nil
			}
			_, err := b.refresh(ctx, owner, server, g.Generation)
			return err == nil, err
		}}
}

// AccessToken returns owner's access token for server, refreshing it first when it
// expires within RefreshBefore. A transient refresh failure still returns the old
// token while it is valid. Returns ErrNoGrant when the owner holds none.
func (b *Broker) AccessToken(ctx context.Context, owner, server string) (string, error) {
	g := b.cached(owner, server)
	if g == nil {
		return "", ErrNoGrant
	}
	if g.RefreshToken != "" && b.due(g) {
		ng, err := b.refresh(ctx, owner, server, g.Generation)
		if err == nil {
			return ng.AccessToken, nil
		}
		if !g.Valid(b.now()) {
			return "", err
		}
	}
	if !g.Valid(b.now()) {
		return "", ErrNoGrant
	}
	return g.AccessToken, nil
}

// due reports whether g should be refreshed now: within RefreshBefore (plus jitter
// up to half of it, so many grants do not refresh in the same second) of expiry.
func (b *Broker) due(g *Grant) bool {
	if g.Expiry.IsZero() {
		return false
	}
	lead := b.RefreshBefore
	if lead <= 0 {
		lead = time.Minute
	}
	j := rand.Float64
	if b.Jitter != nil {
		j = b.Jitter
	}
	lead += time.Duration(j() * float64(lead) / 2)
	return !b.now().Before(g.Expiry.Add(-lead))
}

// Refresh refreshes owner's grant for server now (single-flight with any refresh
// in progress for them).
func (b *Broker) Refresh(ctx context.Context, owner, server string) (*Grant, error) {
	g := b.cached(owner, server)
	if g == nil {
		return nil, ErrNoGrant
	}
	return b.refresh(ctx, owner, server, g.Generation)
}

// refresh runs one refresh for (owner, server) unless one already ran past seen.
// Concurrent callers share it.
func (b *Broker) refresh(ctx context.Context, owner, server string, seen uint64) (*Grant, error) {
	k := grantKey{owner, server}
	v, err, _ := b.sf.Do(owner+"\x00"+server, func() (any, error) {
		cur := b.cached(owner, server)
		if cur == nil {
			return nil, ErrNoGrant
		}
		if cur.Generation > seen {
			return cur, nil // another caller refreshed while we waited for the lock
		}
		now := b.now()
		b.mu.RLock()
		bo := b.backoff[k]
		b.mu.RUnlock()
		if now.Before(bo.until) {
			return nil, fmt.Errorf("%w: backing off until %s", ErrTransient, bo.until.Format(time.RFC3339))
		}
		ctx := context.WithoutCancel(ctx) // one caller leaving must not fail the others
		// Another process sharing the data file may have refreshed (and rotated the
		// refresh token) already: presenting the old one would look like reuse.
		if stored, err := b.stored(ctx, k); err != nil {
			return nil, err
		} else if stored == nil {
			b.forget(k)
			return nil, ErrNoGrant
		} else if stored.ID != cur.ID || stored.RefreshToken != cur.RefreshToken {
			b.mu.Lock()
			b.grants[k] = stored
			b.mu.Unlock()
			return stored, nil
		}
		c, err := b.serverClient(cur.Guarded, owner, server)
		if err != nil {
			return nil, err
		}
		ng, err := c.Refresh(ctx, cur)
		if err != nil {
			return nil, b.refreshFailed(ctx, k, cur, err)
		}
		stored, err := b.swapGrant(ctx, k, cur, ng)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.grants[k] = stored
		delete(b.backoff, k)
		b.mu.Unlock()
		b.record(ctx, "system", domain.TokenRefreshed{Owner: owner, Server: server, GrantID: stored.ID,
			Generation: stored.Generation, ExpiresAt: stored.Expiry, Rotated: stored.RefreshToken != cur.RefreshToken})
		return stored, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*Grant), nil
}

// swapGrant stores ng in place of cur, unless the stored grant moved on (another
// process refreshed, rotating the refresh token, or the owner re-authorized): then
// the stored one wins and is returned, so a rotated refresh token is never
// overwritten by an older one.
func (b *Broker) swapGrant(ctx context.Context, k grantKey, cur, ng *Grant) (*Grant, error) {
	var out *Grant
	err := b.Vault.Update(ctx, grantRef(k.owner, k.server), func(raw []byte, ok bool) ([]byte, error) {
		if !ok {
			return nil, ErrNoGrant
		}
		var st storedGrant
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, err
		}
		if st.ID != cur.ID || st.RefreshToken != cur.RefreshToken {
			out = &st.Grant
			return raw, nil
		}
		out = ng
		return json.Marshal(storedGrant{Owner: k.owner, Server: k.server, Grant: *ng})
	})
	return out, err
}

// refreshFailed records a failed refresh: invalid_grant drops the grant (the owner
// must authorize again), anything else backs off exponentially with jitter.
func (b *Broker) refreshFailed(ctx context.Context, k grantKey, cur *Grant, err error) error {
	if errors.Is(err, ErrInvalidGrant) {
		b.record(ctx, "system", domain.TokenRefreshFailed{Owner: k.owner, Server: k.server, GrantID: cur.ID,
			Class: "invalid_grant", Reason: err.Error()})
		if derr := b.dropGrant(ctx, k, cur.ID); derr != nil {
			return errors.Join(err, derr)
		}
		b.record(ctx, "system", domain.TokenRevoked{Owner: k.owner, Server: k.server, GrantID: cur.ID, Reason: "invalid_grant"})
		return err
	}
	b.mu.Lock()
	bo := b.backoff[k]
	bo.failures++
	d := min(time.Second<<min(bo.failures-1, 10), 5*time.Minute)
	d = d/2 + time.Duration(rand.Float64()*float64(d/2))
	bo.until = b.now().Add(d)
	b.backoff[k] = bo
	b.mu.Unlock()
	b.record(ctx, "system", domain.TokenRefreshFailed{Owner: k.owner, Server: k.server, GrantID: cur.ID,
		Class: "transient", Reason: err.Error(), RetryAt: bo.until})
	return err
}

// dropGrant deletes the grant with id (not a newer one) and tells OnChange.
func (b *Broker) dropGrant(ctx context.Context, k grantKey, id string) error {
	err := b.Vault.Update(ctx, grantRef(k.owner, k.server), func(raw []byte, ok bool) ([]byte, error) {
		if !ok {
			return nil, nil
		}
		var st storedGrant
		if err := json.Unmarshal(raw, &st); err == nil && st.ID != id {
			return raw, nil
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	b.mu.Lock()
	if g := b.grants[k]; g != nil && g.ID == id {
		delete(b.grants, k)
	}
	b.mu.Unlock()
	b.changed(k)
	return nil
}

// stored reads the sealed grant of k (nil when none).
func (b *Broker) stored(ctx context.Context, k grantKey) (*Grant, error) {
	raw, err := b.Vault.Secret(ctx, grantRef(k.owner, k.server))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st storedGrant
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	return &st.Grant, nil
}

// forget drops k from memory (the stored grant is gone) and tells OnChange.
func (b *Broker) forget(k grantKey) {
	b.mu.Lock()
	delete(b.grants, k)
	b.mu.Unlock()
	b.changed(k)
}

func (b *Broker) changed(k grantKey) {
	if b.OnChange != nil {
		b.OnChange(k.owner, k.server)
	}
}

// Run refreshes grants before they expire until ctx ends, checking every interval,
// and reads again the grants Observe saw change.
func (b *Broker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	b.mu.Lock()
	b.init()
	wake := b.wake
	b.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			b.reloadGrants(ctx)
			continue
		case <-t.C:
		}
		b.mu.RLock()
		var due []grantKey
		var gens []uint64
		for k, g := range b.grants {
			if g.RefreshToken != "" && b.due(g) && !b.now().Before(b.backoff[k].until) {
				due, gens = append(due, k), append(gens, g.Generation)
			}
		}
		b.mu.RUnlock()
		for i, k := range due {
			if _, err := b.refresh(ctx, k.owner, k.server, gens[i]); err != nil {
				b.log().Warn("proactive token refresh failed", "owner", k.owner, "server", k.server, "err", err)
			}
		}
		if _, err := b.PurgeFlows(ctx); err != nil && ctx.Err() == nil {
			b.log().Warn("purge expired authorization flows", "err", err)
		}
	}
}

// record appends an OAuth fact to the owner's connection stream. A failure is
// logged: the fact already happened at the authorization server.
func (b *Broker) record(ctx context.Context, actor string, fact any) {
	src := b.Source
	if src == "" {
		src = "mcpes://local"
	}
	env, err := events.New(fact, events.Meta{ID: b.newID(), Source: src, Time: b.now(), Actor: actor})
	if err == nil {
		_, err = b.Vault.Append(context.WithoutCancel(ctx), env.Subject, store.AnyVersion, env)
	}
	if err != nil {
		b.log().Error("record oauth event", "type", fmt.Sprintf("%T", fact), "err", err)
	}
}
