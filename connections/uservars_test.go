package connections

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

// wire is a loopback MCP server that records, per owner header, the path and
// headers of the requests it received.
type wire struct {
	mu   sync.Mutex
	seen map[string][]string // X-User -> "path|authorization|x-mail"
	url  string
}

func newWire(tb testing.TB) *wire {
	w := &wire{seen: map[string][]string{}}
	h := server.NewStreamableHTTPServer(clockserver.New())
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.seen[r.Header.Get("X-User")] = append(w.seen[r.Header.Get("X-User")],
			r.URL.Path+"|"+r.Header.Get("Authorization")+"|"+r.Header.Get("X-Mail"))
		w.mu.Unlock()
		r.URL.Path = "/mcp"
		h.ServeHTTP(rw, r)
	}))
	tb.Cleanup(ts.Close)
	w.url = ts.URL
	return w
}

func (w *wire) last(user string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.seen[user]
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func TestRepository_UserVars_SubstitutedPerOwnerOnTheWire(t *testing.T) {
	// given an app server whose url and headers use per-owner values, and a store
	// of owners' values behind the UserValues hook
	w := newWire(t)
	var mu sync.Mutex
	values := map[string]map[string]string{}
	profiles := map[string]map[string]string{"alice": {"EMAIL": "alice@example.com"}, "bob": {"EMAIL": "bob@example.com"}}
	e := newEnv(t, func(o *Options) {
		o.UserValues = func(_ context.Context, owner, _ string) (map[string]string, map[string]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return values[owner], profiles[owner], nil
		}
	})
	cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: w.url + "/s/{{KEY}}/mcp", InitTimeoutMS: 5000,
		Headers:        map[string]string{"Authorization": "Bearer {{KEY}}", "X-User": "{{LIBRECHAT_USER_ID}}", "X-Mail": "{{LIBRECHAT_USER_EMAIL}}"},
		CustomUserVars: map[string]CustomUserVarAlias{"KEY": {Title: "Key", Description: "your key"}}}
	e.put(domain.AppScope, "per user", cfg)
	setVals := func(owner, key string) {
		mu.Lock()
		values[owner] = map[string]string{"KEY": key}
		mu.Unlock()
		e.append(domain.UserVarsChanged{Owner: owner, Server: "per user", Set: []string{"KEY"}})
		e.append(domain.OwnerProfileChanged{Owner: owner, Set: []string{"EMAIL"}})
	}

	// when alice connects before setting her key, then it is refused, recorded with
	// the rule and the missing names, and nothing reached the server
	_, err := e.m.Repo("alice").Get(ctxT(t), "per user")
	var re *RefusedError
	if !errors.As(err, &re) || re.Rule != domain.RuleUserVarsMissing {
		t.Fatalf("get before values: %v", err)
	}
	ref := e.facts("alice", "per user")[0].(domain.ConnectionRefused)
	if ref.Rule != domain.RuleUserVarsMissing || ref.Inputs.Config.MissingUserVars != "KEY, LIBRECHAT_USER_EMAIL" {
		t.Fatalf("refusal = %+v", ref)
	}
	if w.last("alice") != "" {
		t.Fatal("a request reached the server without the owner's values")
	}
	// and the shared repository never connects it
	if _, err := e.m.Repo("").Get(ctxT(t), "per user"); !errors.As(err, &re) || re.Rule != domain.RuleCustomUserVars {
		t.Fatalf("shared get: %v", err)
	}

	// when alice and bob set their values and connect
	setVals("alice", "k-alice-1")
	setVals("bob", "k-bob")
	ca, err := e.m.Repo("alice").Get(ctxT(t), "per user")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ca, "alice")
	cb, err := e.m.Repo("bob").Get(ctxT(t), "per user")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, cb, "bob")

	// then each owner's values went on the wire, never a placeholder
	if got := w.last("alice"); got != "/s/k-alice-1/mcp|Bearer k-alice-1|alice@example.com" {
		t.Fatalf("alice on the wire: %q", got)
	}
	if got := w.last("bob"); got != "/s/k-bob/mcp|Bearer k-bob|bob@example.com" {
		t.Fatalf("bob on the wire: %q", got)
	}
	for user := range w.seen {
		if strings.Contains(user, "{{") {
			t.Fatalf("placeholder sent: %q", user)
		}
	}

	// when alice changes her key, then her connection is stale and rebuilt with it,
	// and bob's is untouched
	setVals("alice", "k-alice-2")
	ca2, err := e.m.Repo("alice").Get(ctxT(t), "per user")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ca2, "alice again")
	if got := w.last("alice"); got != "/s/k-alice-2/mcp|Bearer k-alice-2|alice@example.com" {
		t.Fatalf("alice after change: %q", got)
	}
	wantKinds(t, e, "alice", "per user", "refused/user_vars_missing", "opened", "evicted/stale", "opened")
	if cb2, err := e.m.Repo("bob").Get(ctxT(t), "per user"); err != nil || cb2 != cb {
		t.Fatalf("bob's connection was replaced: %v", err)
	}
}

// CustomUserVarAlias keeps the config literal above short.
type CustomUserVarAlias = domain.CustomUserVar
