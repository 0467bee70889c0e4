package oauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/credentials"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/oauth"
	"github.com/mcpes/mcpes/oauth/oauthtest"
	"github.com/mcpes/mcpes/store/bolt"
)

// fakeClock is a settable clock shared by a broker and its client.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func newClock(t time.Time) *fakeClock    { c := &fakeClock{}; c.set(t); return c }
func (c *fakeClock) add(d time.Duration) { c.set(c.now().Add(d)) }

type rig struct {
	as     *oauthtest.Server
	vault  *credentials.Store
	broker *oauth.Broker
	clock  *fakeClock
	path   string
	change atomic.Int64
}

func newRig(tb testing.TB) *rig {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "log.db")
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	key, _ := credentials.GenerateKey("k1")
	keys, _ := credentials.ParseKeys(key)
	r := &rig{as: oauthtest.Start(tb), vault: credentials.New(st, keys), clock: newClock(time.Now()), path: path}
	r.broker = r.newBroker()
	return r
}

func (r *rig) newBroker() *oauth.Broker {
	return &oauth.Broker{Vault: r.vault, Clock: r.clock.now, Jitter: func() float64 { return 0 },
		Client:   &oauth.Client{RedirectURL: "http://127.0.0.1:7300/v1/oauth/callback", Now: r.clock.now},
		OnChange: func(string, string) { r.change.Add(1) }}
}

// authorize runs a whole flow for alice as a browser would.
func (r *rig) authorize(tb testing.TB, ctx context.Context) url.Values {
	tb.Helper()
	u, err := r.broker.Start(ctx, "owner:alice", oauth.Target{Owner: "alice", Server: "gh", URL: r.as.URL + "/mcp",
		Scope: domain.UserScope("alice")})
	if err != nil {
		tb.Fatal(err)
	}
	q, err := oauth.FollowHeadless(ctx, nil, u)
	if err != nil {
		tb.Fatal(err)
	}
	if owner, server, err := r.broker.Callback(ctx, q); err != nil || owner != "alice" || server != "gh" {
		tb.Fatalf("callback: %s %s %v", owner, server, err)
	}
	return q
}

func (r *rig) types(tb testing.TB) []string {
	tb.Helper()
	evs, err := r.vault.ReadAll(context.Background(), 0, 10000)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(e.Type, "mcpes."), ".v1"))
	}
	return out
}

func TestBroker_AuthorizeRefreshRevoke(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	// given alice authorized gh through the returned URL
	q := r.authorize(t, ctx)
	id := r.broker.GrantID("alice", "gh")
	tok, err := r.broker.AccessToken(ctx, "alice", "gh")
	if id == "" || err != nil || !strings.HasPrefix(tok, "at-") || r.change.Load() != 1 {
		t.Fatalf("after callback: grant %q token %q %v changes %d", id, tok, err, r.change.Load())
	}
	// then bob holds nothing
	if r.broker.GrantID("bob", "gh") != "" {
		t.Fatal("bob holds alice's grant")
	}
	// when the same callback comes again, then it is refused (single use)
	if _, _, err := r.broker.Callback(ctx, q); !errors.Is(err, oauth.ErrState) {
		t.Fatalf("replayed callback: %v, want ErrState", err)
	}
	// when the token nears expiry, then the next use refreshes it
	r.clock.add(2 * time.Hour)
	tok2, err := r.broker.AccessToken(ctx, "alice", "gh")
	if err != nil || tok2 == tok || r.as.RefreshRequests.Load() != 1 {
		t.Fatalf("refresh: %q %v, %d refresh requests", tok2, err, r.as.RefreshRequests.Load())
	}
	// when alice revokes, then the AS is told and the grant is gone
	told, err := r.broker.Revoke(ctx, "owner:alice", "alice", "gh")
	if err != nil || !told || r.as.Revocations.Load() == 0 || r.broker.GrantID("alice", "gh") != "" {
		t.Fatalf("revoke: told %t %v, grant %q", told, err, r.broker.GrantID("alice", "gh"))
	}
	want := []string{"oauth.flow_started", "oauth.completed", "token.refreshed", "token.revoked"}
	if got := r.types(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", got, want)
	}
	// and no token, code, state or verifier is in the events or the data file in clear
	evs, _ := r.vault.ReadAll(ctx, 0, 1000)
	var all bytes.Buffer
	for _, e := range evs {
		b, _ := json.Marshal(e)
		all.Write(b)
	}
	r.vault.Backend.Close()
	raw, _ := os.ReadFile(r.path)
	for _, s := range []string{tok, tok2, q.Get("code"), q.Get("state")} {
		if bytes.Contains(all.Bytes(), []byte(s)) || bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q found in clear", s)
		}
	}
}

func TestBroker_Refresh_50ConcurrentCallersOneTokenRequest(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.authorize(t, ctx)
	old, _ := r.broker.AccessToken(ctx, "alice", "gh")
	// given the token is about to expire
	r.clock.add(time.Hour - 30*time.Second)
	// when 50 callers want it at once
	start := make(chan struct{})
	toks := make([]string, 50)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			<-start
			toks[i], errs[i] = r.broker.AccessToken(ctx, "alice", "gh")
		})
	}
	close(start)
	wg.Wait()
	// then one token request was made, no refresh token was reused, all got the new token
	if n := r.as.RefreshRequests.Load(); n != 1 {
		t.Errorf("%d refresh requests, want 1", n)
	}
	if r.as.FamilyRevoked() {
		t.Error("the AS saw a rotated refresh token reused and revoked the family")
	}
	for i := range 50 {
		if errs[i] != nil || toks[i] == old || toks[i] != toks[0] {
			t.Fatalf("caller %d: %q %v (first %q, old %q)", i, toks[i], errs[i], toks[0], old)
		}
	}
	// and a second broker on the same data (another process) adopts the rotated token
	// instead of presenting the old one
	other := r.newBroker()
	if err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r.clock.add(time.Hour - 30*time.Second)
	if _, err := r.broker.Refresh(ctx, "alice", "gh"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Refresh(ctx, "alice", "gh"); err != nil {
		t.Fatalf("second process: %v", err)
	}
	if r.as.FamilyRevoked() || r.as.RefreshRequests.Load() != 2 {
		t.Errorf("second process: reuse %d, %d refresh requests", r.as.Reuses.Load(), r.as.RefreshRequests.Load())
	}
}

func TestBroker_InvalidGrantDropsTheGrant(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.authorize(t, ctx)
	// given the AS revoked the grant on its side
	tok, _ := r.broker.AccessToken(ctx, "alice", "gh")
	r.as.RevokeAll()
	_ = tok
	// when a refresh is attempted, then invalid_grant drops it: alice must authorize again
	r.clock.add(2 * time.Hour)
	if _, err := r.broker.AccessToken(ctx, "alice", "gh"); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Fatalf("refresh after AS revocation: %v, want ErrInvalidGrant", err)
	}
	if r.broker.GrantID("alice", "gh") != "" {
		t.Fatal("grant kept after invalid_grant")
	}
	if got := strings.Join(r.types(t), ","); !strings.HasSuffix(got, "token.refresh_failed,token.revoked") {
		t.Errorf("events %s", got)
	}
}

func TestBroker_Callback_WrongIssuerRefused(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	u, err := r.broker.Start(ctx, "owner:alice", oauth.Target{Owner: "alice", Server: "gh", URL: r.as.URL + "/mcp", Scope: domain.AppScope})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := oauth.FollowHeadless(ctx, nil, u)
	// when the callback names another issuer (a mix-up attack), then it is refused
	q.Set("iss", "http://127.0.0.1:1")
	if _, _, err := r.broker.Callback(ctx, q); !errors.Is(err, oauth.ErrIssuer) {
		t.Fatalf("wrong iss: %v, want ErrIssuer", err)
	}
	if r.broker.GrantID("alice", "gh") != "" || r.as.CodeRequests.Load() != 0 {
		t.Fatal("a grant came out of a wrong-issuer callback")
	}
	if got := r.types(t); got[len(got)-1] != "oauth.failed" {
		t.Errorf("events %v", got)
	}
}

func TestBroker_Authorize_UsesTheConfigsOAuthBlock(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	// given an app server whose LibreChat oauth block pre-registers a client
	cfg := domain.ServerConfig{Type: "streamable-http", URL: r.as.URL + "/mcp", OAuth: &domain.OAuthConfig{
		ClientID: "pre-registered", ClientSecret: "${GH_SECRET}", Scope: "tools admin"}}
	r.broker.Servers = func(owner, name string) (domain.ServerState, bool) {
		return domain.ServerState{Scope: domain.AppScope, Name: name, Config: cfg}, name == "gh"
	}
	r.broker.Env = func(k string) (string, bool) { return "from-env", k == "GH_SECRET" }
	// when alice is sent to authorize, then the URL names that client and scope, not a registered one
	u, err := r.broker.Authorize(ctx, "owner:alice", "alice", "gh")
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(u)
	if q.Query().Get("client_id") != "pre-registered" || q.Query().Get("scope") != "tools admin" {
		t.Fatalf("authorization URL %s", u)
	}
	// and an unknown server is refused
	if _, err := r.broker.Authorize(ctx, "owner:alice", "alice", "nope"); !errors.Is(err, oauth.ErrNoTarget) {
		t.Fatalf("unknown server: %v", err)
	}
}

func TestBroker_TransientFailureBacksOffThenRecovers(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.authorize(t, ctx)
	old, _ := r.broker.AccessToken(ctx, "alice", "gh")
	// given the token endpoint is down while the token is due but still valid
	r.as.Unavailable.Store(true)
	r.clock.add(time.Hour - 30*time.Second)
	// when it is used, then the old token still serves and one refresh was tried
	if tok, err := r.broker.AccessToken(ctx, "alice", "gh"); err != nil || tok != old {
		t.Fatalf("during outage: %q %v", tok, err)
	}
	// and further uses within the backoff do not hammer the endpoint
	for range 20 {
		_, _ = r.broker.AccessToken(ctx, "alice", "gh")
	}
	if n := r.as.RefreshRequests.Load(); n != 1 {
		t.Fatalf("%d refresh requests during backoff, want 1", n)
	}
	// when the endpoint is back and the backoff has passed, then the next use refreshes
	r.as.Unavailable.Store(false)
	r.clock.add(2 * time.Second)
	if tok, err := r.broker.AccessToken(ctx, "alice", "gh"); err != nil || tok == old {
		t.Fatalf("after recovery: %q %v", tok, err)
	}
	if got := strings.Join(r.types(t), ","); !strings.Contains(got, "token.refresh_failed,token.refreshed") {
		t.Errorf("events %s", got)
	}
	if r.broker.GrantID("alice", "gh") == "" {
		t.Error("a transient failure dropped the grant")
	}
}

func TestBroker_Run_RefreshesBeforeExpiryAndPurgesFlows(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRig(t)
	r.authorize(t, ctx)
	// given a flow that was started and never finished
	if _, err := r.broker.Start(ctx, "owner:alice", oauth.Target{Owner: "alice", Server: "gh", URL: r.as.URL + "/mcp",
		Scope: domain.AppScope}); err != nil {
		t.Fatal(err)
	}
	// when the token nears expiry and the flow's time runs out, with Run going
	r.clock.add(time.Hour - 30*time.Second)
	done := make(chan struct{})
	go func() { r.broker.Run(ctx, 5*time.Millisecond); close(done) }()
	flows := func() int {
		n := 0
		_ = r.vault.RangeSecrets(context.Background(), func(ref string, _ []byte) error {
			if strings.HasPrefix(ref, "oauth/flow/") {
				n++
			}
			return nil
		})
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for (r.as.RefreshRequests.Load() == 0 || flows() != 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	// then the token was refreshed without anyone asking for it, once
	if r.as.RefreshRequests.Load() != 1 {
		t.Fatalf("%d proactive refreshes", r.as.RefreshRequests.Load())
	}
	// and the expired flow is gone from the store
	if n := flows(); n != 0 {
		t.Errorf("%d flow records left after expiry", n)
	}
}

func TestBroker_Start_BoundsPendingFlowsPerOwner(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	target := oauth.Target{Owner: "alice", Server: "gh", URL: r.as.URL + "/mcp", Scope: domain.AppScope}
	for i := range oauth.MaxPendingFlows {
		if _, err := r.broker.Start(ctx, "owner:alice", target); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
	}
	// when alice starts one more while all are pending, then it is refused
	if _, err := r.broker.Start(ctx, "owner:alice", target); !errors.Is(err, oauth.ErrTooManyFlows) {
		t.Fatalf("flow over the bound: %v", err)
	}
	// and bob is not affected
	target.Owner = "bob"
	if _, err := r.broker.Start(ctx, "owner:bob", target); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// and every flow used the one dynamic registration made for this AS
	if n := r.as.Registrations.Load(); n != 1 {
		t.Errorf("%d dynamic registrations, want 1", n)
	}
}
