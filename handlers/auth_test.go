package handlers_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/handlers"
)

func TestAuth_TokensAndHealth(t *testing.T) {
	s := newSvc(t)

	// health and readiness need no token
	expect(t, s.do("GET", "/healthz", "", nil), http.StatusOK, "")
	r := s.do("GET", "/readyz", "", nil)
	expect(t, r, http.StatusOK, "")
	var ready handlers.ReadyResponse
	r.json(t, &ready)
	if !ready.Ready || ready.Detail == nil {
		t.Fatalf("readyz %s", r.body)
	}
	s.ready.Store(false)
	expect(t, s.do("GET", "/readyz", "", nil), http.StatusServiceUnavailable, "")
	expect(t, s.do("GET", "/metrics", "", nil), http.StatusOK, "")

	// every API route needs a valid token: 401 with a Bearer challenge
	for _, tok := range []string{"", "wrong-token", adminToken + "x"} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/v1/servers"}, {"GET", "/v1/servers/x"}, {"PUT", "/v1/servers/x"}, {"DELETE", "/v1/servers/x"},
			{"POST", "/v1/servers/x/reinspect"}, {"GET", "/v1/connections"}, {"POST", "/v1/connections/x"},
			{"DELETE", "/v1/connections/x"}, {"GET", "/v1/events"}, {"GET", "/v1/audit/explain?server=x"},
			{"POST", "/v1/audit/verify"},
		} {
			head := s.head()
			r := s.do(req.method, req.path, tok, `{"url":"http://127.0.0.1:1/mcp"}`)
			if r.status != http.StatusUnauthorized || r.errCode() != handlers.CodeUnauthorized ||
				!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s %s with %q: %d %v %s", req.method, req.path, tok, r.status, r.header, r.body)
			}
			if s.head() != head {
				t.Fatalf("%s %s with %q wrote an event", req.method, req.path, tok)
			}
		}
	}

	// unknown routes and methods answer in JSON too
	expect(t, s.do("GET", "/v1/nope", adminToken, nil), http.StatusNotFound, handlers.CodeNotFound)
	r = s.do("PATCH", "/v1/servers/x", adminToken, nil)
	expect(t, r, http.StatusMethodNotAllowed, handlers.CodeMethodNotAllowed)
	if r.header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
}

func TestAuth_NoTokensAdmitsLoopbackOnly(t *testing.T) {
	// given an Auth without any token
	a, err := handlers.NewAuth(nil, "")
	if err != nil {
		t.Fatal(err)
	}

	// then a loopback caller is the admin, anybody else is refused
	req := httptest.NewRequest("GET", "/v1/servers", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	if id, err := a.Authenticate(req); err != nil || !id.Admin {
		t.Fatalf("loopback: %+v %v", id, err)
	}
	req.RemoteAddr = "[::1]:5555"
	if id, err := a.Authenticate(req); err != nil || !id.Admin {
		t.Fatalf("loopback v6: %+v %v", id, err)
	}
	req.RemoteAddr = "192.0.2.7:5555"
	if _, err := a.Authenticate(req); !errors.Is(err, handlers.ErrUnauthorized) {
		t.Fatalf("remote: %v", err)
	}

	// and serving refuses non-loopback listen addresses without tokens
	for addr, ok := range map[string]bool{"127.0.0.1:7300": true, "localhost:7300": true, "[::1]:7300": true,
		":7300": false, "0.0.0.0:7300": false, "192.0.2.7:7300": false, "[::]:7300": false} {
		err := handlers.RequireTokensFor(addr, a)
		if ok != (err == nil) || (err != nil && !errors.Is(err, handlers.ErrNoTokens)) {
			t.Errorf("RequireTokensFor(%q) = %v", addr, err)
		}
	}
	withToken, _ := handlers.NewAuth(nil, "env-admin")
	if err := handlers.RequireTokensFor("0.0.0.0:7300", withToken); err != nil {
		t.Fatalf("with a token: %v", err)
	}
}

func TestAuth_ConfiguredTokens(t *testing.T) {
	// given an owner token from the config and the admin token from the environment
	a, err := handlers.NewAuth([]handlers.TokenConfig{
		{SHA256: strings.ToUpper(handlers.HashToken("carol-secret")), Role: "owner", Owner: "carol"},
	}, "env-admin")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(header string) (handlers.Identity, error) {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "127.0.0.1:1" // loopback does not matter once tokens exist
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		return a.Authenticate(req)
	}

	// then each token gives its identity; anything else is unauthorized
	if id, err := ask("Bearer carol-secret"); err != nil || id.Admin || id.Owner != "carol" || id.Actor() != "owner:carol" {
		t.Fatalf("carol: %+v %v", id, err)
	}
	if id, err := ask("bearer env-admin"); err != nil || !id.Admin || id.Actor() != "admin" {
		t.Fatalf("admin: %+v %v", id, err)
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic Y2Fyb2w6eA==", "Bearer carol-secret2", "carol-secret"} {
		if _, err := ask(h); !errors.Is(err, handlers.ErrUnauthorized) {
			t.Errorf("header %q: %v", h, err)
		}
	}
}

func TestNewAuth_ListsEveryBadEntry(t *testing.T) {
	_, err := handlers.NewAuth([]handlers.TokenConfig{
		{SHA256: "abc", Role: "admin"},
		{SHA256: handlers.HashToken("x"), Role: "root"},
		{SHA256: handlers.HashToken("y"), Role: "owner"},
		{SHA256: handlers.HashToken("z"), Role: "admin", Owner: "alice"},
	}, "")
	if !errors.Is(err, handlers.ErrInvalidAuth) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"tokens[0].sha256", "tokens[1].role", "tokens[2].owner", "tokens[3].owner"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func TestHashToken(t *testing.T) {
	// the SHA-256 of "abc", as `mcpes token hash` prints it
	if got := handlers.HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
}
