package handlers_test

import (
	"net/http"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
)

func TestConnections_ConnectListDisconnect(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)
	expect(t, s.do("PUT", "/v1/servers/clock", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")

	// when alice connects the app server
	r := s.do("POST", "/v1/connections/clock", aliceToken, nil)

	// then 200 with the connection, built from the current config version
	expect(t, r, http.StatusOK, "")
	var c handlers.Connection
	r.json(t, &c)
	st, _ := s.servers.State(domain.AppScope, "clock")
	if c.Owner != "alice" || c.Server != "clock" || c.ConnID == "" || c.ConfigPosition != st.Version ||
		c.ConfigScope != domain.AppScope || c.State != domain.ConnAlive || c.ToolCount != 4 {
		t.Fatalf("connection %+v (version %d)", c, st.Version)
	}
	// and a second call returns the same connection
	var again handlers.Connection
	s.do("POST", "/v1/connections/clock", aliceToken, nil).json(t, &again)
	if again.ConnID != c.ConnID {
		t.Fatalf("second connect %s, want the same %s", again.ConnID, c.ConnID)
	}

	// and alice's list has it, bob's and the shared repository's do not
	var list handlers.ConnectionList
	s.do("GET", "/v1/connections", aliceToken, nil).json(t, &list)
	if list.Owner != "alice" || len(list.Connections) != 1 || list.Connections[0].ConnID != c.ConnID {
		t.Fatalf("alice's connections %+v", list)
	}
	for _, tok := range []string{bobToken, adminToken} {
		s.do("GET", "/v1/connections", tok, nil).json(t, &list)
		if len(list.Connections) != 0 {
			t.Fatalf("connections with %s: %+v", tok, list)
		}
	}
	s.do("GET", "/v1/connections?owner=alice", adminToken, nil).json(t, &list)
	if len(list.Connections) != 1 {
		t.Fatalf("admin's view of alice: %+v", list)
	}

	// when alice disconnects, then it is gone; a second disconnect says there was none
	var d handlers.DisconnectResponse
	r = s.do("DELETE", "/v1/connections/clock", aliceToken, nil)
	expect(t, r, http.StatusOK, "")
	r.json(t, &d)
	if !d.Disconnected {
		t.Fatalf("disconnect %s", r.body)
	}
	s.do("DELETE", "/v1/connections/clock", aliceToken, nil).json(t, &d)
	if d.Disconnected {
		t.Fatal("second disconnect reported a connection")
	}
	expect(t, s.do("DELETE", "/v1/connections/nope", aliceToken, nil), http.StatusNotFound, handlers.CodeNotFound)
}

func TestConnections_ListFromLogProjection(t *testing.T) {
	s := newSvc(t, func(s *svc, d *handlers.Deps) { d.ConnProjection = s.conns })
	clock := newClock(t)
	expect(t, s.do("PUT", "/v1/servers/clock", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
	expect(t, s.do("POST", "/v1/connections/clock", bobToken, nil), http.StatusOK, "")

	// when the connections are listed from the log's projection
	var list handlers.ConnectionList
	s.do("GET", "/v1/connections", bobToken, nil).json(t, &list)

	// then bob's connection is there, and alice sees none
	if len(list.Connections) != 1 || list.Connections[0].Server != "clock" || list.Connections[0].State != domain.ConnAlive {
		t.Fatalf("bob's %+v", list)
	}
	s.do("GET", "/v1/connections", aliceToken, nil).json(t, &list)
	if len(list.Connections) != 0 {
		t.Fatalf("alice's %+v", list)
	}
}

func TestConnections_RefusedNotFoundUnavailable(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)
	down := newClock(t)
	down.down.Store(true)

	// given a failed server, a startup:false app server, and one that died after inspection
	expect(t, s.do("PUT", "/v1/servers/failed", adminToken, httpCfg(down.URL)), http.StatusCreated, "")
	lazy := httpCfg(clock.URL)
	lazy["startup"] = false
	expect(t, s.do("PUT", "/v1/servers/lazy", adminToken, lazy), http.StatusCreated, "")
	dying := newClock(t)
	expect(t, s.do("PUT", "/v1/servers/dying", adminToken, httpCfg(dying.URL)), http.StatusCreated, "")
	dying.down.Store(true)

	cases := []struct {
		name, token, path string
		status            int
		code              string
		rule              domain.Rule
	}{
		{"no such server", aliceToken, "/v1/connections/nope", 404, handlers.CodeNotFound, ""},
		{"failed inspection", aliceToken, "/v1/connections/failed", 403, handlers.CodeRefused, domain.RuleInspectionFailed},
		{"startup false, shared", adminToken, "/v1/connections/lazy", 403, handlers.CodeRefused, domain.RuleStartupDisabled},
		{"upstream died", aliceToken, "/v1/connections/dying", 502, handlers.CodeUpstreamUnavailable, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// when the owner asks for a connection
			r := s.do("POST", c.path, c.token, nil)

			// then the status, code and rule say why not
			expect(t, r, c.status, c.code)
			var body handlers.ErrorBody
			r.json(t, &body)
			if body.Error.Rule != c.rule && c.rule != "" {
				t.Fatalf("rule %q, want %q: %s", body.Error.Rule, c.rule, r.body)
			}
		})
	}
	// and the startup:false server is allowed for an owner
	expect(t, s.do("POST", "/v1/connections/lazy", aliceToken, nil), http.StatusOK, "")
}
