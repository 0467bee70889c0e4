package handlers_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/internal/testevents"
)

// raw sends one request with exactly the given headers ("Host" sets the Host line).
func (s *svc) raw(method, path, body string, hdr map[string]string) resp {
	s.tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.ts.URL+path, rd)
	if err != nil {
		s.tb.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := s.ts.Client().Do(req)
	if err != nil {
		s.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// noTokens is the service as it runs without auth.tokens: loopback callers are admin.
func noTokens(_ *svc, d *handlers.Deps) { d.Auth = nil }

func TestSecurity_DNSRebindingCannotRegisterACommand(t *testing.T) {
	// given the service in its no-token mode, and a page that rebinds attacker.example
	// to 127.0.0.1 and so reaches it from the victim's browser
	s := newSvc(t, noTokens)
	marker := filepath.Join(t.TempDir(), "pwned")
	body := `{"command":"/bin/touch","args":["` + marker + `"]}`
	port := s.ts.URL[strings.LastIndex(s.ts.URL, ":")+1:]
	before := s.head()

	// when the page PUTs a stdio server, as a simple (no preflight) cross-site request
	r := s.raw(http.MethodPut, "/v1/servers/pwn", body, map[string]string{"Host": "attacker.example:" + port,
		"Origin": "http://attacker.example:" + port, "Content-Type": "text/plain"})

	// then it is refused for its Host, nothing is written and nothing runs
	expect(t, r, http.StatusForbidden, handlers.CodeForbiddenHost)
	if s.head() != before {
		t.Fatal("events were written for a refused request")
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
}

func TestSecurity_OriginHostAndMediaType(t *testing.T) {
	// given the service without tokens, one extra host and one extra origin allowed
	s := newSvc(t, noTokens, func(_ *svc, d *handlers.Deps) {
		d.Protection = &handlers.Protection{AllowedHosts: []string{"mcpes.internal"},
			AllowedOrigins: []string{"https://chat.example"}}
	})
	self := strings.TrimPrefix(s.ts.URL, "http://")
	put := `{"type":"sse","url":"http://127.0.0.1:1/sse","startup":false}`
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"curl without Origin", "GET", "/v1/servers", "", nil, 200, ""},
		{"allowed host", "GET", "/v1/servers", "", map[string]string{"Host": "mcpes.internal:7300"}, 200, ""},
		{"localhost", "GET", "/v1/servers", "", map[string]string{"Host": "localhost"}, 200, ""},
		{"foreign host", "GET", "/v1/servers", "", map[string]string{"Host": "evil.example"}, 403, handlers.CodeForbiddenHost},
		{"foreign host on healthz", "GET", "/healthz", "", map[string]string{"Host": "evil.example"}, 403, handlers.CodeForbiddenHost},
		{"same origin", "GET", "/v1/servers", "", map[string]string{"Origin": "http://" + self}, 200, ""},
		{"allowed origin", "GET", "/v1/servers", "", map[string]string{"Origin": "https://chat.example"}, 200, ""},
		{"cross-site connect", "POST", "/v1/connections/x", "", map[string]string{"Origin": "http://evil.example"}, 403, handlers.CodeForbiddenOrigin},
		{"null origin", "GET", "/v1/servers", "", map[string]string{"Origin": "null"}, 403, handlers.CodeForbiddenOrigin},
		{"text/plain body", "PUT", "/v1/servers/a", put, map[string]string{"Content-Type": "text/plain"}, 415, handlers.CodeUnsupportedMedia},
		{"form body", "PUT", "/v1/servers/a", put, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, handlers.CodeUnsupportedMedia},
		{"no type with a body", "PUT", "/v1/servers/a", put, nil, 415, handlers.CodeUnsupportedMedia},
		{"json body", "PUT", "/v1/servers/a", put, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 201, ""},
		{"foreign host on /mcp", "POST", "/mcp", `{}`, map[string]string{"Host": "evil.example", "Content-Type": "application/json"}, 403, handlers.CodeForbiddenHost},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := s.head()
			r := s.raw(c.method, c.path, c.body, c.hdr)
			expect(t, r, c.status, c.code)
			if r.status == 403 || r.status == 415 {
				if s.head() != before {
					t.Fatal("a refused request wrote events")
				}
			}
		})
	}
}

func TestSecurity_CaseFoldedKeysAreRefused(t *testing.T) {
	// given alice, and config bodies that smuggle a second value of a field under a
	// key differing only in case
	s := newSvc(t)
	cases := map[string]string{
		"Headers": `{"type":"streamable-http","url":"https://example.com/mcp","headers":null,"Headers":{"Authorization":"secret:0123456789abcdef0123456789abcdef"}}`,
		"Type":    `{"type":"streamable-http","url":"https://example.com/mcp","Type":"stdio","Command":"/bin/sh"}`,
		"URL":     `{"type":"streamable-http","url":"https://example.com/mcp","URL":"http://127.0.0.1:9/mcp"}`,
	}
	for key, body := range cases {
		t.Run(key, func(t *testing.T) {
			before := s.head()
			// when alice PUTs it
			r := s.do("PUT", "/v1/servers/sneaky", aliceToken, body)
			// then it is a 400 naming the key, and nothing is written
			expect(t, r, http.StatusBadRequest, handlers.CodeInvalidConfig)
			if !strings.Contains(string(r.body), `"field":"`+key+`"`) || !strings.Contains(string(r.body), "only in case") {
				t.Fatalf("body does not name %s: %s", key, r.body)
			}
			if s.head() != before {
				t.Fatal("events written")
			}
		})
	}
}

func TestSecurity_OwnerRateLimit(t *testing.T) {
	// given owners limited to 1 request a second after a burst of 3, on a fixed clock
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 4, 14, 2, 0, 0, time.UTC).UnixNano())
	lim, err := handlers.NewLimiter(1, 3, func() time.Time { return time.Unix(0, now.Load()) })
	if err != nil {
		t.Fatal(err)
	}
	s := newSvc(t, func(_ *svc, d *handlers.Deps) {
		d.Limiter = lim
		d.Gateway = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	})

	// when alice sends four requests at once
	for range 3 {
		expect(t, s.do("GET", "/v1/servers", aliceToken, nil), 200, "")
	}
	r := s.do("GET", "/v1/servers", aliceToken, nil)

	// then the fourth is a 429 with Retry-After, while bob and the admin go on
	expect(t, r, http.StatusTooManyRequests, handlers.CodeRateLimited)
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q", ra)
	}
	expect(t, s.do("GET", "/v1/servers", bobToken, nil), 200, "")
	for range 10 {
		expect(t, s.do("GET", "/v1/servers", adminToken, nil), 200, "")
	}
	// and /mcp counts against the same bucket
	if r := s.raw("POST", "/mcp", `{}`, map[string]string{"Authorization": "Bearer " + aliceToken,
		"Content-Type": "application/json"}); r.status != http.StatusTooManyRequests {
		t.Fatalf("/mcp: %d", r.status)
	}
	// and a second later alice has one request again
	now.Add(int64(time.Second))
	expect(t, s.do("GET", "/v1/servers", aliceToken, nil), 200, "")
	expect(t, s.do("GET", "/v1/servers", aliceToken, nil), http.StatusTooManyRequests, handlers.CodeRateLimited)
}

func TestSecurity_LowItems(t *testing.T) {
	s := newSvc(t)
	// names "." and "..", also percent-encoded, are refused
	for _, p := range []string{"/v1/servers/.", "/v1/servers/%2E", "/v1/servers/%2E%2E"} {
		r := s.do("PUT", p, adminToken, `{"type":"sse","url":"http://127.0.0.1:1/sse"}`)
		if r.status != http.StatusBadRequest && r.status != http.StatusNotFound {
			t.Errorf("PUT %s: %d %s", p, r.status, r.body)
		}
		if r.status == http.StatusCreated || r.status == http.StatusOK {
			t.Fatalf("PUT %s registered a server", p)
		}
	}
	// an out-of-range time is a 400, not an empty 200
	expect(t, s.do("GET", "/v1/audit/explain?owner=alice&server=x&at=9223372036854775807", adminToken, nil),
		http.StatusBadRequest, handlers.CodeInvalidRequest)
}

func TestSecurity_OwnersSeeNoAppServerFailureMessage(t *testing.T) {
	// given an app server whose inspection failed with stderr carrying a secret
	s := newSvc(t)
	s.do("PUT", "/v1/servers/leaky", adminToken, `{"type":"sse","url":"http://127.0.0.1:1/sse","startup":false}`)
	st, _ := s.servers.State(domain.AppScope, "leaky")
	testevents.Append(t, s.st, "system", domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "leaky",
		ConfigVersion: st.Version, Class: domain.FailureProtocol, Message: "stderr: TOPSECRET-TOKEN"})

	// when alice and the admin read it (one server, the list, and explain)
	for _, path := range []string{"/v1/servers/leaky", "/v1/servers", "/v1/audit/explain?server=leaky"} {
		alice := s.do("GET", path, aliceToken, nil)
		// then alice sees the class, never the message
		if alice.status != 200 || strings.Contains(string(alice.body), "TOPSECRET") || !strings.Contains(string(alice.body), "protocol") {
			t.Fatalf("alice %s: %d %s", path, alice.status, alice.body)
		}
	}
	// and the operator sees it
	if admin := s.do("GET", "/v1/servers/leaky", adminToken, nil); !strings.Contains(string(admin.body), "TOPSECRET") {
		t.Fatalf("admin: %s", admin.body)
	}
}
