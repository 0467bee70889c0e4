package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
)

func TestServers_PutGetListDelete_AppScope(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)
	cfg := httpCfg(clock.URL)
	cfg["headers"] = map[string]string{"Authorization": "Bearer top-secret-value"}
	cfg["x-team"] = "payments" // an unknown field: kept, reported as a warning

	// when the admin registers an app server
	r := s.do("PUT", "/v1/servers/clock", adminToken, cfg)

	// then it is created (201), inspected, its secret redacted, the unknown field kept
	expect(t, r, http.StatusCreated, "")
	var put handlers.PutResponse
	r.json(t, &put)
	if !put.Created || put.Scope != domain.AppScope || put.State != "ready" || put.ToolCount != 4 {
		t.Fatalf("put %+v", put)
	}
	if put.Config.Headers["Authorization"] != domain.Redacted || len(put.Warnings) == 0 {
		t.Fatalf("put config %+v warnings %v", put.Config, put.Warnings)
	}
	if string(put.Config.Extra["x-team"]) != `"payments"` {
		t.Fatalf("unknown field not kept: %v", put.Config.Extra)
	}

	// when the same config is put again, then 200 and nothing changed, nothing written
	head := s.head()
	r = s.do("PUT", "/v1/servers/clock", adminToken, cfg)
	expect(t, r, http.StatusOK, "")
	r.json(t, &put)
	if put.Created || len(put.Changed) != 0 || s.head() != head {
		t.Fatalf("identical put: %+v, head %d -> %d", put, head, s.head())
	}

	// when a field changes, then 200 naming it
	cfg["timeout"] = 1234
	r = s.do("PUT", "/v1/servers/clock", adminToken, cfg)
	expect(t, r, http.StatusOK, "")
	r.json(t, &put)
	if put.Created || strings.Join(put.Changed, ",") != "timeout" {
		t.Fatalf("change: %+v", put)
	}

	// then GET shows it with tools and inspection, secrets redacted
	r = s.do("GET", "/v1/servers/clock", adminToken, nil)
	expect(t, r, http.StatusOK, "")
	if strings.Contains(string(r.body), "top-secret-value") {
		t.Fatalf("secret in GET: %s", r.body)
	}
	var one handlers.Server
	r.json(t, &one)
	if one.Name != "clock" || len(one.Tools) != 4 || one.Inspection == nil || one.Inspection.ServerName != "clock" ||
		!one.MayConnect || one.Rule != domain.RuleAllowed || one.Config.TimeoutMS != 1234 {
		t.Fatalf("get %+v", one)
	}

	// and the list (for the app level and for any owner) has it
	for _, tok := range []string{adminToken, aliceToken} {
		r = s.do("GET", "/v1/servers", tok, nil)
		expect(t, r, http.StatusOK, "")
		var list handlers.ServerList
		r.json(t, &list)
		if len(list.Servers) != 1 || list.Servers[0].Name != "clock" || list.Servers[0].ToolCount != 4 {
			t.Fatalf("list with %s: %s", tok, r.body)
		}
		if strings.Contains(string(r.body), "top-secret-value") {
			t.Fatalf("secret in list: %s", r.body)
		}
	}

	// when it is removed, then GET and a second DELETE are 404
	expect(t, s.do("DELETE", "/v1/servers/clock", adminToken, nil), http.StatusOK, "")
	expect(t, s.do("GET", "/v1/servers/clock", adminToken, nil), http.StatusNotFound, handlers.CodeNotFound)
	expect(t, s.do("DELETE", "/v1/servers/clock", adminToken, nil), http.StatusNotFound, handlers.CodeNotFound)
}

func TestServers_RejectedBodiesWriteNothing(t *testing.T) {
	s := newSvc(t, func(_ *svc, d *handlers.Deps) { d.MaxBodyBytes = 4096 })
	cases := []struct {
		name, token, path string
		body              string
		status            int
		code              string
	}{
		{"malformed", adminToken, "/v1/servers/x", `{"url": `, 400, handlers.CodeInvalidRequest},
		{"not an object", adminToken, "/v1/servers/x", `["http://a"]`, 400, handlers.CodeInvalidRequest},
		{"empty", adminToken, "/v1/servers/x", ``, 400, handlers.CodeInvalidRequest},
		{"trailing data", adminToken, "/v1/servers/x", `{"url":"http://127.0.0.1:1/mcp"} {}`, 400, handlers.CodeInvalidRequest},
		{"wrong type", adminToken, "/v1/servers/x", `{"url":"http://127.0.0.1:1/mcp","timeout":"soon"}`, 400, handlers.CodeInvalidConfig},
		{"invalid values", adminToken, "/v1/servers/x", `{"type":"carrier-pigeon","timeout":-5}`, 400, handlers.CodeInvalidConfig},
		{"bad name", adminToken, "/v1/servers/a%01b", `{"url":"http://127.0.0.1:1/mcp"}`, 400, handlers.CodeInvalidConfig},
		{"stdio from an owner", aliceToken, "/v1/servers/x", `{"command":"/bin/sh","args":["-c","id"]}`, 400, handlers.CodeInvalidConfig},
		{"placeholder from an owner", aliceToken, "/v1/servers/x", `{"url":"http://127.0.0.1:1/mcp","headers":{"A":"${HOME}"}}`, 400, handlers.CodeInvalidConfig},
		{"oversized", adminToken, "/v1/servers/x", `{"url":"http://127.0.0.1:1/mcp","description":"` + strings.Repeat("a", 5000) + `"}`, 413, handlers.CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// given the log's head
			head := s.head()

			// when the body is put
			r := s.do("PUT", c.path, c.token, c.body)

			// then it is refused with the code, and no event was written
			expect(t, r, c.status, c.code)
			if s.head() != head {
				t.Fatalf("head moved %d -> %d", head, s.head())
			}
		})
	}
}

func TestServers_InvalidConfigListsEveryProblem(t *testing.T) {
	s := newSvc(t)

	// when an owner puts a stdio config with a placeholder and a bad timeout
	r := s.do("PUT", "/v1/servers/tool", aliceToken, `{"command":"run-me","env":{"K":"${SECRET}"},"timeout":-1}`)

	// then every problem is listed with server, field and reason
	expect(t, r, http.StatusBadRequest, handlers.CodeInvalidConfig)
	var body handlers.ErrorBody
	r.json(t, &body)
	fields := map[string]bool{}
	for _, p := range body.Error.Problems {
		if p.Server != "tool" || p.Reason == "" {
			t.Fatalf("problem %+v", p)
		}
		fields[p.Field] = true
	}
	if len(body.Error.Problems) < 3 || !fields["timeout"] {
		t.Fatalf("problems %+v, want the transport, the placeholder and the timeout", body.Error.Problems)
	}
}

func TestServers_OwnersAreIsolated(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)

	// given alice's private server (with a secret header) and an app server
	cfg := httpCfg(clock.URL)
	cfg["headers"] = map[string]string{"X-Key": "alice-private-key"}
	expect(t, s.do("PUT", "/v1/servers/notes", aliceToken, cfg), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/shared", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")

	// then bob cannot see or touch alice's server: every answer is 404, as for nothing
	head := s.head()
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/servers/notes"},
		{"GET", "/v1/servers/notes?owner=alice"}, // ?owner is ignored for owner tokens
		{"DELETE", "/v1/servers/notes"},
		{"DELETE", "/v1/servers/notes?owner=alice"},
		{"POST", "/v1/servers/notes/reinspect"},
		{"POST", "/v1/connections/notes"},
		{"DELETE", "/v1/connections/notes"},
	} {
		r := s.do(req.method, req.path, bobToken, nil)
		if r.status != http.StatusNotFound || r.errCode() != handlers.CodeNotFound {
			t.Fatalf("bob %s %s: %d %s", req.method, req.path, r.status, r.body)
		}
	}
	r := s.do("GET", "/v1/servers", bobToken, nil)
	if strings.Contains(string(r.body), "notes") {
		t.Fatalf("bob's list shows alice's server: %s", r.body)
	}
	// and bob's PUT of the same name creates bob's own, leaving alice's alone
	expect(t, s.do("PUT", "/v1/servers/notes?owner=alice", bobToken, httpCfg(clock.URL)), http.StatusCreated, "")
	if st, _ := s.servers.State(domain.UserScope("bob"), "notes"); !st.Exists {
		t.Fatal("bob's put did not land in bob's scope")
	}
	if st, _ := s.servers.State(domain.UserScope("alice"), "notes"); st.Config.URL != clock.URL || st.Version > head {
		t.Fatalf("alice's server changed: %+v", st)
	}

	// and an owner cannot manage app servers: its DELETE looks in its own scope only
	expect(t, s.do("DELETE", "/v1/servers/shared", aliceToken, nil), http.StatusNotFound, handlers.CodeNotFound)
	if st, _ := s.servers.State(domain.AppScope, "shared"); !st.Exists {
		t.Fatal("alice removed an app server")
	}

	// and alice sees her own (redacted) and the app one; the admin sees hers with ?owner
	r = s.do("GET", "/v1/servers/notes", aliceToken, nil)
	expect(t, r, http.StatusOK, "")
	if strings.Contains(string(r.body), "alice-private-key") || !strings.Contains(string(r.body), domain.Redacted) {
		t.Fatalf("alice's GET: %s", r.body)
	}
	expect(t, s.do("GET", "/v1/servers/notes?owner=alice", adminToken, nil), http.StatusOK, "")
	expect(t, s.do("GET", "/v1/servers/notes", adminToken, nil), http.StatusNotFound, handlers.CodeNotFound)
	var list handlers.ServerList
	s.do("GET", "/v1/servers?owner=alice", adminToken, nil).json(t, &list)
	if list.Owner != "alice" || len(list.Servers) != 2 {
		t.Fatalf("admin's list for alice: %+v", list)
	}
}

func TestServers_ShadowedPrivateServerIsReported(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)

	// given alice's private "clock" and then an app "clock"
	expect(t, s.do("PUT", "/v1/servers/clock", aliceToken, httpCfg(clock.URL)), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/clock", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")

	// when alice reads it and lists her servers
	var one handlers.Server
	s.do("GET", "/v1/servers/clock", aliceToken, nil).json(t, &one)
	var list handlers.ServerList
	s.do("GET", "/v1/servers", aliceToken, nil).json(t, &list)

	// then the app one is in force and says it hides hers; the list shows hers as shadowed
	if one.Scope != domain.AppScope || !one.PrivateShadowed {
		t.Fatalf("get %+v", one)
	}
	if len(list.Servers) != 2 || list.Servers[0].Scope != domain.AppScope || !list.Servers[1].Shadowed || list.Servers[1].MayConnect {
		t.Fatalf("list %+v", list.Servers)
	}
}

func TestServers_Reinspect(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)

	// given a healthy server and one whose upstream was down when it was registered
	expect(t, s.do("PUT", "/v1/servers/ok", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
	flaky := newClock(t)
	flaky.down.Store(true)
	r := s.do("PUT", "/v1/servers/flaky", adminToken, httpCfg(flaky.URL))
	expect(t, r, http.StatusCreated, "")
	var put handlers.PutResponse
	r.json(t, &put)
	if put.State != "failed" || put.MayConnect {
		t.Fatalf("flaky after put: %+v", put)
	}

	// then unknown is 404 and not failed is 409
	expect(t, s.do("POST", "/v1/servers/nope/reinspect", adminToken, nil), http.StatusNotFound, handlers.CodeNotFound)
	expect(t, s.do("POST", "/v1/servers/ok/reinspect", adminToken, nil), http.StatusConflict, handlers.CodeNotFailed)

	// when the failed one is reinspected while still down, then 200 with ok false and a reason
	r = s.do("POST", "/v1/servers/flaky/reinspect", adminToken, nil)
	expect(t, r, http.StatusOK, "")
	var res struct {
		Server string `json:"server"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}
	r.json(t, &res)
	if res.Server != "flaky" || res.OK || res.Reason == "" {
		t.Fatalf("still down: %s", r.body)
	}

	// when it is back up, then 200 ok and the server is usable again
	flaky.down.Store(false)
	r = s.do("POST", "/v1/servers/flaky/reinspect", adminToken, nil)
	expect(t, r, http.StatusOK, "")
	r.json(t, &res)
	if !res.OK {
		t.Fatalf("back up: %s", r.body)
	}
	var one handlers.Server
	s.do("GET", "/v1/servers/flaky", adminToken, nil).json(t, &one)
	if one.State != "ready" || !one.MayConnect {
		t.Fatalf("after recovery: %+v", one)
	}
}
