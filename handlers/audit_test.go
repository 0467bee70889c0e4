package handlers_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/upstream"
)

func TestAudit_ExplainShadowingAtTwoTimes(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)

	// given alice's own "clock", connected; then an app "clock" that shadows it
	expect(t, s.do("PUT", "/v1/servers/clock", aliceToken, httpCfg(clock.URL)), http.StatusCreated, "")
	expect(t, s.do("POST", "/v1/connections/clock", aliceToken, nil), http.StatusOK, "")
	time.Sleep(2 * time.Millisecond)
	t1 := time.Now().UTC()
	time.Sleep(2 * time.Millisecond)
	expect(t, s.do("PUT", "/v1/servers/clock", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
	expect(t, s.do("POST", "/v1/connections/clock", aliceToken, nil), http.StatusOK, "")

	explain := func(token, query string) handlers.ExplainResponse {
		t.Helper()
		r := s.do("GET", "/v1/audit/explain?"+query, token, nil)
		expect(t, r, http.StatusOK, "")
		var ex handlers.ExplainResponse
		r.json(t, &ex)
		return ex
	}

	// when alice asks at t1 and now
	then := explain(aliceToken, "server=clock&at="+url.QueryEscape(t1.Format(time.RFC3339Nano)))
	now := explain(aliceToken, "server=clock")

	// then at t1 her own config was in force; now the app one, hers shadowed
	if then.Scope != domain.UserScope("alice") || then.Shadowed || !then.MayConnect || then.Rule != domain.RuleAllowed {
		t.Fatalf("at t1: scope %q shadowed %v rule %q", then.Scope, then.Shadowed, then.Rule)
	}
	if now.Scope != domain.AppScope || !now.Shadowed || !strings.Contains(now.Text, "shadowed") {
		t.Fatalf("now: scope %q shadowed %v\n%s", now.Scope, now.Shadowed, now.Text)
	}
	if len(now.Decisions) == 0 || now.Decisions[len(now.Decisions)-1].Evict != domain.EvictStale {
		t.Fatalf("now: decisions %+v, want the stale replacement last", now.Decisions)
	}

	// and the admin gets the same for ?owner=alice; bob asking about alice gets his own view
	if ex := explain(adminToken, "owner=alice&server=clock"); ex.Owner != "alice" || !ex.Shadowed {
		t.Fatalf("admin for alice: %+v", ex.Explanation)
	}
	bob := explain(bobToken, "owner=alice&server=clock&at="+url.QueryEscape(t1.Format(time.RFC3339Nano)))
	if bob.Owner != "bob" || bob.Found || len(bob.History) != 0 || len(bob.Decisions) != 0 {
		t.Fatalf("bob sees alice's trail: %+v", bob.Explanation)
	}

	// and bad requests are 400
	expect(t, s.do("GET", "/v1/audit/explain", aliceToken, nil), http.StatusBadRequest, handlers.CodeInvalidRequest)
	expect(t, s.do("GET", "/v1/audit/explain?server=clock&at=yesterday", aliceToken, nil), http.StatusBadRequest, handlers.CodeInvalidRequest)
	expect(t, s.do("GET", "/v1/audit/explain?server=a%2Fb", aliceToken, nil), http.StatusBadRequest, handlers.CodeInvalidRequest)
}

func TestAudit_VerifyCleanThenTampered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := newClock(t)
	{
		s := newSvcOn(t, st, false)

		// given a service with servers and a connection
		expect(t, s.do("PUT", "/v1/servers/clock", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
		cfg := httpCfg(clock.URL)
		cfg["description"] = "tamper-marker"
		expect(t, s.do("PUT", "/v1/servers/other", aliceToken, cfg), http.StatusCreated, "")
		expect(t, s.do("POST", "/v1/connections/clock", aliceToken, nil), http.StatusOK, "")

		// when the admin verifies, then all is well; an owner is told there is no such route
		r := s.do("POST", "/v1/audit/verify", adminToken, nil)
		expect(t, r, http.StatusOK, "")
		var rep audit.VerifyReport
		r.json(t, &rep)
		if !rep.OK || rep.Events != int(s.head()) || rep.Decisions != 1 || len(rep.Problems) != 0 {
			t.Fatalf("clean: %s", r.body)
		}
		expect(t, s.do("POST", "/v1/audit/verify", aliceToken, nil), http.StatusNotFound, handlers.CodeNotFound)
		s.close() // shutdown evictions are recorded before the file is edited
	}
	closeAndTamper(t, st, path)

	// when the verify route runs on the tampered file (the projections refuse to load a
	// broken chain, so the API is built on empty ones: verify reads only the store)
	ro, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ro.Close() })
	empty := projections.NewServers()
	reg, err := registry.New(ro, empty, &upstream.Guard{}, registry.Options{InspectOnPut: registry.InspectOff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	h := handlers.New(handlers.Deps{Store: ro, Servers: empty, Registry: reg,
		Manager: connections.NewManager(ro, empty, connections.Options{})})
	req := httptest.NewRequest("POST", "http://127.0.0.1:7300/v1/audit/verify", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}

	// then the report names the broken chain
	expect(t, r, http.StatusOK, "")
	var rep audit.VerifyReport
	r.json(t, &rep)
	if rep.OK || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "chain") {
		t.Fatalf("tampered: %s", r.body)
	}
}

// closeAndTamper closes st and flips one byte of each copy of the marker in its file.
func closeAndTamper(tb testing.TB, st *bolt.Store, path string) {
	tb.Helper()
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// The record may be on more than one page (bolt keeps freed copies): flip them all.
	n := 0
	for i := bytes.Index(raw, []byte("tamper-marker")); i >= 0; i = bytes.Index(raw, []byte("tamper-marker")) {
		raw[i] ^= 0x01 // 't' -> 'u'
		n++
	}
	if n == 0 {
		tb.Fatal("marker not in the file")
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
}
