package handlers_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"

	"github.com/mcpes/mcpes/handlers"
)

func TestVars_SetListClear_NamesOnlyNeverValues(t *testing.T) {
	// given an app server with a per-owner key, and alice's private server
	s := newSvc(t)
	clock := newClock(t)
	cfg := httpCfg(clock.URL)
	cfg["headers"] = map[string]string{"Authorization": "Bearer {{KEY}}"}
	cfg["customUserVars"] = map[string]any{"KEY": map[string]any{"title": "Key", "description": "your key"}}
	expect(t, s.do("PUT", "/v1/servers/per%20user", adminToken, cfg), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/mine?owner=alice", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
	const secret = "very-secret-value-4711"

	// when alice lists, sets, lists again
	var before, after handlers.VarsResponse
	r := s.do("GET", "/v1/servers/per%20user/vars", aliceToken, nil)
	expect(t, r, http.StatusOK, "")
	r.json(t, &before)
	r = s.do("PUT", "/v1/servers/per%20user/vars", aliceToken, map[string]string{"KEY": secret})
	expect(t, r, http.StatusOK, "")
	r.json(t, &after)

	// then the names and their state are shown, never the value
	if len(before.Vars) != 1 || before.Vars[0].Name != "KEY" || before.Vars[0].Set || !before.Vars[0].Sensitive {
		t.Fatalf("before: %+v", before)
	}
	if len(after.Vars) != 1 || !after.Vars[0].Set || after.Owner != "alice" || strings.Contains(string(r.body), secret) {
		t.Fatalf("after: %s", r.body)
	}
	// and the log holds the names only
	ev := s.do("GET", "/v1/events", adminToken, nil)
	if !strings.Contains(string(ev.body), "mcpes.owner.vars_changed.v1") || strings.Contains(string(ev.body), secret) {
		t.Fatalf("events: %s", ev.body)
	}
	// and bob sees his own (unset) state, not alice's
	var bobs handlers.VarsResponse
	s.do("GET", "/v1/servers/per%20user/vars", bobToken, nil).json(t, &bobs)
	if bobs.Vars[0].Set {
		t.Fatal("bob sees alice's value as set")
	}

	// when values are refused
	expect(t, s.do("PUT", "/v1/servers/per%20user/vars", aliceToken, map[string]string{"OTHER": "x"}), http.StatusBadRequest, handlers.CodeInvalidConfig)
	expect(t, s.do("PUT", "/v1/servers/per%20user/vars", aliceToken, `["KEY"]`), http.StatusBadRequest, handlers.CodeInvalidRequest)
	expect(t, s.do("PUT", "/v1/servers/mine/vars", bobToken, map[string]string{"KEY": "x"}), http.StatusNotFound, handlers.CodeNotFound)
	expect(t, s.do("PUT", "/v1/servers/per%20user/vars", adminToken, map[string]string{"KEY": "x"}), http.StatusBadRequest, handlers.CodeInvalidRequest)

	// when alice clears, then it is unset again
	var cleared handlers.VarsResponse
	r = s.do("DELETE", "/v1/servers/per%20user/vars", aliceToken, nil)
	expect(t, r, http.StatusOK, "")
	r.json(t, &cleared)
	if cleared.Vars[0].Set {
		t.Fatalf("after delete: %s", r.body)
	}
}

func TestVars_ConnectUsesTheOwnersValue(t *testing.T) {
	// given an app server that needs alice's key in a header, behind a gate
	s := newSvc(t)
	clock := newClock(t)
	gate := newGate(t, clock.URL, "Bearer k-alice")
	cfg := httpCfg(gate)
	cfg["headers"] = map[string]string{"Authorization": "Bearer {{KEY}}"}
	cfg["customUserVars"] = map[string]any{"KEY": map[string]any{"title": "Key", "description": "your key"}}
	expect(t, s.do("PUT", "/v1/servers/gated", adminToken, cfg), http.StatusCreated, "")

	// when alice connects without her key, then the refusal names the rule
	r := s.do("POST", "/v1/connections/gated", aliceToken, nil)
	expect(t, r, http.StatusForbidden, handlers.CodeRefused)
	if !strings.Contains(string(r.body), "user_vars_missing") {
		t.Fatalf("refusal: %s", r.body)
	}
	// when she sets it, then the connect goes through with it
	expect(t, s.do("PUT", "/v1/servers/gated/vars", aliceToken, map[string]string{"KEY": "k-alice"}), http.StatusOK, "")
	expect(t, s.do("POST", "/v1/connections/gated", aliceToken, nil), http.StatusOK, "")
	// and that first connect inspects the on-demand server for alice alone: her
	// catalogue is recorded on her stream, the shared state stays uninspected
	deadline := time.Now().Add(10 * time.Second)
	for {
		if oi, ok := s.servers.OwnerInspection("alice", "gated"); ok && oi.Inspected != nil && len(oi.Inspected.Tools) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no inspection recorded for alice")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := s.servers.OwnerInspection("bob", "gated"); ok {
		t.Fatal("bob got alice's inspection")
	}
	if st, _ := s.servers.State(domain.AppScope, "gated"); st.Inspected || st.LastSuccess != nil {
		t.Fatalf("shared state inspected: %+v", st)
	}
	if ev := s.do("GET", "/v1/events?type=mcpes.owner.inspected.v1", adminToken, nil); !strings.Contains(string(ev.body), "owner/alice/inspections/gated") {
		t.Fatalf("events: %s", ev.body)
	}
	// and reinspect works per owner: alice's inspection is not failed (409), bob
	// has no key yet (a structured not-ok result, nothing recorded)
	expect(t, s.do("POST", "/v1/servers/gated/reinspect", aliceToken, nil), http.StatusConflict, handlers.CodeNotFailed)
	var rr struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}
	r = s.do("POST", "/v1/servers/gated/reinspect", bobToken, nil)
	expect(t, r, http.StatusOK, "")
	if r.json(t, &rr); rr.OK || !strings.Contains(rr.Reason, "KEY") {
		t.Fatalf("bob reinspect: %s", r.body)
	}
	// and the admin's profile route records names only
	expect(t, s.do("PUT", "/v1/owners/alice/profile", adminToken, map[string]string{"EMAIL": "a@example.com"}), http.StatusOK, "")
	expect(t, s.do("PUT", "/v1/owners/alice/profile", aliceToken, map[string]string{"EMAIL": "x"}), http.StatusNotFound, "")
	var p handlers.ProfileResponse
	s.do("GET", "/v1/owners/alice/profile", aliceToken, nil).json(t, &p)
	if len(p.Set) != 1 || p.Set[0] != "EMAIL" {
		t.Fatalf("profile: %+v", p)
	}
}

// newGate serves target's MCP endpoint on loopback, answering 401 unless the
// request carries the wanted Authorization header.
func newGate(tb testing.TB, target, auth string) string {
	tb.Helper()
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != auth {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts.URL + "/mcp"
}
