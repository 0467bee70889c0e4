package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers/gateway"
)

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"%s","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`

// clockEnv is the clock example registered as the app server "clock", reached at
// MCP 2025-11-25 (the service's default).
func clockEnv(t testing.TB, opts ...envOption) (*env, string) {
	t.Helper()
	e := newEnvWith(t, func(o *connections.Options) { o.Upstream.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION }, opts...)
	clock := startClock(t, "127.0.0.1:0")
	e.put(domain.AppScope, "clock", httpCfg(clock.URL))
	return e, e.ts.URL + "/mcp/clock"
}

// initSession initializes a session on u at revision and returns its id.
func initSession(t *testing.T, u, revision string) string {
	t.Helper()
	res := rawPost(t, u, aliceToken, strings.Replace(initBody, "%s", revision, 1), nil)
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %d %s", res.StatusCode, b)
	}
	if !strings.Contains(string(b), `"protocolVersion":"`+revision+`"`) {
		t.Fatalf("initialize answered %s, want revision %s", b, revision)
	}
	return res.Header.Get("Mcp-Session-Id")
}

func send(t *testing.T, method, u, sid, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

const listBody = `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`

func TestPerServer_SessionsFollowTheSpec(t *testing.T) {
	_, u := clockEnv(t)
	sid := initSession(t, u, "2025-11-25")

	cases := []struct {
		name   string
		method string
		sid    string
		body   string
		hdr    map[string]string
		want   int
	}{
		{"a request of the session", http.MethodPost, sid, listBody, nil, http.StatusOK},
		{"no session id", http.MethodPost, "", listBody, nil, http.StatusBadRequest},
		{"a made-up session id", http.MethodPost, "0123456789abcdef0123456789abcdef", listBody, nil, http.StatusNotFound},
		{"an Accept without event streams", http.MethodPost, sid, listBody, map[string]string{"Accept": "application/json"}, http.StatusNotAcceptable},
		{"a body that is not JSON", http.MethodPost, sid, listBody, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"a batch on 2025-11-25", http.MethodPost, sid, "[" + listBody + "]", nil, http.StatusBadRequest},
		{"a foreign Host on loopback", http.MethodPost, sid, listBody, map[string]string{"Host": "evil.example:80"}, http.StatusForbidden},
		{"a notification", http.MethodPost, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil, http.StatusAccepted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := send(t, c.method, u, c.sid, c.body, c.hdr)
			if res.StatusCode != c.want {
				t.Errorf("HTTP %d %s, want %d", res.StatusCode, body, c.want)
			}
		})
	}

	// when the client deletes its session, then later requests of it get 404
	if res, body := send(t, http.MethodDelete, u, sid, "", nil); res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d %s", res.StatusCode, body)
	}
	if res, _ := send(t, http.MethodPost, u, sid, listBody, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("after DELETE: HTTP %d, want 404", res.StatusCode)
	}
	// and another owner cannot use alice's session
	sid2 := initSession(t, u, "2025-11-25")
	res, _ := send(t, http.MethodPost, u, sid2, listBody, map[string]string{"Authorization": "Bearer " + bobToken})
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("bob on alice's session: HTTP %d, want 404", res.StatusCode)
	}
}

func TestPerServer_BatchesOn20250326(t *testing.T) {
	_, u := clockEnv(t)
	// given a session at 2025-03-26, the revision that has batches
	sid := initSession(t, u, "2025-03-26")
	// when the client sends a batch of two requests and a notification
	res, body := send(t, http.MethodPost, u, sid, `[{"jsonrpc":"2.0","id":"a","method":"ping"},`+
		`{"jsonrpc":"2.0","method":"notifications/initialized"},`+
		`{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"text":"in a batch"}}}]`, nil)
	// then both answers come back
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"id":"a"`) || !strings.Contains(body, `in a batch`) {
		t.Errorf("batch: HTTP %d %s", res.StatusCode, body)
	}
}

func TestPerServer_ResumesAStreamAfterLastEventID(t *testing.T) {
	// (the reference server, not the clock: mcp-go's server drops its own last
	// progress notification in most calls, even directly)
	e, _, _ := confEnv(t)
	u := e.ts.URL + "/mcp/conf"
	sid := initSession(t, u, "2025-11-25")
	// given a call that reports progress ten times over 500 ms
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{"steps":9,"delayMs":50},"_meta":{"progressToken":"p"}}}`))
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// when the client reads the first event and loses the connection
	first := readEvent(t, bufio.NewReader(res.Body))
	cancel()
	res.Body.Close()
	if first.id == "" || !strings.Contains(first.data, "notifications/progress") {
		t.Fatalf("first event %+v, want a progress notification with an id", first)
	}
	// and comes back with GET and Last-Event-ID a while later (events went meanwhile)
	time.Sleep(150 * time.Millisecond)
	greq, _ := http.NewRequest(http.MethodGet, u, nil)
	greq.Header.Set("Authorization", "Bearer "+aliceToken)
	greq.Header.Set("Accept", "text/event-stream")
	greq.Header.Set("Mcp-Session-Id", sid)
	greq.Header.Set("Last-Event-ID", first.id)
	gres, err := http.DefaultClient.Do(greq)
	if err != nil {
		t.Fatal(err)
	}
	defer gres.Body.Close()
	// then it gets the rest of the stream: the other progress and the result
	r := bufio.NewReader(gres.Body)
	progress := 1
	for {
		ev := readEvent(t, r)
		if strings.Contains(ev.data, "notifications/progress") {
			progress++
			continue
		}
		if !strings.Contains(ev.data, `"id":9`) || !strings.Contains(ev.data, `"result"`) {
			t.Fatalf("event %+v, want the result of request 9", ev)
		}
		break
	}
	if progress != 10 {
		t.Errorf("saw %d progress notifications in all, want 10", progress)
	}
}

type rawEvent struct{ id, data string }

func readEvent(t *testing.T, r *bufio.Reader) rawEvent {
	t.Helper()
	var ev rawEvent
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v (so far %+v)", err, ev)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && ev.data != "":
			return ev
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
	t.Fatal("no event")
	return ev
}

func TestPerServer_DecisionsAndToolCallsCarryTheMCPRequest(t *testing.T) {
	e, u := clockEnv(t, func(d *gateway.Deps) { d.AuditToolCalls = gateway.AuditMetadata })
	// given no open connection of alice's to the clock yet
	// when alice initializes a session and calls a tool as request 7
	sid := initSession(t, u, "2025-11-25")
	if res, body := send(t, http.MethodPost, u, sid,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("call: %d %s", res.StatusCode, body)
	}
	// then the connect decision carries the initialize request and tool.called the call
	evs, err := e.st.ReadAll(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, ev := range evs {
		if ev.Type == events.TypeConnectionOpened || ev.Type == events.TypeToolCalled {
			seen[ev.Type] = ev.CorrelationID
		}
	}
	if got, want := seen[events.TypeConnectionOpened], sid+"/1"; got != want {
		t.Errorf("connection.opened correlation %q, want %q (all: %v)", got, want, seen)
	}
	if got, want := seen[events.TypeToolCalled], sid+"/7"; got != want {
		t.Errorf("tool.called correlation %q, want %q", got, want)
	}
}

func TestPerServer_ProgressRestartsTheTimeoutUpToTheMaximum(t *testing.T) {
	for _, c := range []struct {
		name   string
		max    time.Duration
		wantOK bool
	}{
		{"progress keeps a long call alive", time.Minute, true},
		{"but not past the maximum", 500 * time.Millisecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// given the clock with a 300 ms timeout
			e := newEnvWith(t, func(o *connections.Options) { o.Upstream.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION },
				func(d *gateway.Deps) { d.MaxTimeout = c.max })
			clock := startClock(t, "127.0.0.1:0")
			cfg := httpCfg(clock.URL)
			cfg.TimeoutMS = 300
			e.put(domain.AppScope, "clock", cfg)
			u := e.ts.URL + "/mcp/clock"
			sid := initSession(t, u, "2025-11-25")
			// when a call sleeps 1 s and reports progress every 100 ms
			_, body := send(t, http.MethodPost, u, sid,
				`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":1000},"_meta":{"progressToken":1}}}`, nil)
			// then it ends with its result while progress comes, and fails at the maximum
			ok := strings.Contains(body, "slept 1000ms")
			timedOut := strings.Contains(body, "did not answer within its timeout")
			if ok != c.wantOK || timedOut == c.wantOK {
				t.Errorf("answer %s", body)
			}
		})
	}
}

func TestPerServer_IdleSessionsEnd(t *testing.T) {
	// given a gateway whose clock the test moves, sessions idle for 1 min ending
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	_, u := clockEnv(t, func(d *gateway.Deps) {
		d.Clock = func() time.Time { return time.Unix(0, now.Load()) }
		d.SessionIdleTTL = time.Minute
	})
	old := initSession(t, u, "2025-11-25")
	// when two minutes pass without a request of it and another session starts
	now.Add(int64(2 * time.Minute))
	fresh := initSession(t, u, "2025-11-25")
	// then the idle session is gone and the new one works
	if res, _ := send(t, http.MethodPost, u, old, listBody, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("idle session: HTTP %d, want 404", res.StatusCode)
	}
	if res, _ := send(t, http.MethodPost, u, fresh, listBody, nil); res.StatusCode != http.StatusOK {
		t.Errorf("fresh session: HTTP %d, want 200", res.StatusCode)
	}
}

func TestAggregate_SessionsFollowTheSpec(t *testing.T) {
	e, _ := clockEnv(t)
	u := e.URL()
	sid := initSession(t, u, "2025-11-25")
	// a made-up session id, and a deleted one, get 404 on /mcp too
	if res, _ := send(t, http.MethodPost, u, "0123456789abcdef0123456789abcdef", listBody, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("made-up session: HTTP %d, want 404", res.StatusCode)
	}
	if res, body := send(t, http.MethodPost, u, sid, listBody, nil); res.StatusCode != http.StatusOK || !strings.Contains(body, "clock__echo") {
		t.Errorf("tools/list: HTTP %d %s", res.StatusCode, body)
	}
	if res, _ := send(t, http.MethodDelete, u, sid, "", nil); res.StatusCode != http.StatusOK {
		t.Errorf("DELETE: HTTP %d", res.StatusCode)
	}
	if res, _ := send(t, http.MethodPost, u, sid, listBody, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("after DELETE: HTTP %d, want 404", res.StatusCode)
	}
}

// sessionToolServer offers each session the tools that existed when the session
// started (as servers that build their tool set per session do); add adds one.
func sessionToolServer(tb testing.TB) (url string, add func(name string)) {
	tb.Helper()
	var mu sync.Mutex
	added := map[string]int{} // tool -> generation it appeared in
	started := map[string]int{}
	gen := 0
	hooks := &server.Hooks{}
	hooks.AddOnRegisterSession(func(_ context.Context, sess server.ClientSession) {
		mu.Lock()
		started[sess.SessionID()] = gen
		mu.Unlock()
	})
	filter := func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
		sess := server.ClientSessionFromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		g, ok := 0, false
		if sess != nil {
			g, ok = started[sess.SessionID()]
		}
		var out []mcp.Tool
		for _, t := range tools {
			if !ok || added[t.Name] <= g {
				out = append(out, t)
			}
		}
		return out
	}
	s := server.NewMCPServer("sessions", "1", server.WithToolCapabilities(true), server.WithHooks(hooks),
		server.WithToolFilter(filter))
	add = func(name string) {
		mu.Lock()
		gen++
		added[name] = gen
		mu.Unlock()
		s.AddTool(mcp.NewTool(name, mcp.WithDescription("tool "+name)),
			func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ran " + name), nil
			})
	}
	add("old")
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	tb.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	return ts.URL + "/mcp", add
}

func TestPerServer_ANewToolOfANewerCatalogueRenewsTheConnection(t *testing.T) {
	// given a server that gives each session the tools it has when the session starts
	url, add := sessionToolServer(t)
	e := newEnvWith(t, func(o *connections.Options) { o.Upstream.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION })
	e.put(domain.AppScope, "sess", httpCfg(url))
	u := e.ts.URL + "/mcp/sess"
	sid := initSession(t, u, "2025-11-25")
	if _, body := send(t, http.MethodPost, u, sid, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"old"}}`, nil); !strings.Contains(body, "ran old") {
		t.Fatalf("old: %s", body)
	}
	// when it gains a tool, a re-inspection records it, and the client calls it
	add("new")
	if out, err := e.reg.Inspect(context.Background(), domain.AppScope, "sess"); err != nil || !out.OK {
		t.Fatalf("reinspect: %+v %v", out, err)
	}
	_, body := send(t, http.MethodPost, u, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"new"}}`, nil)
	// then the call is made on a fresh connection (the old session lacks the tool),
	// and the renewal is recorded for that request
	if !strings.Contains(body, "ran new") {
		t.Fatalf("new: %s", body)
	}
	evs, err := e.st.ReadAll(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var evicted bool
	for _, ev := range evs {
		if ev.Type == events.TypeConnectionEvicted && ev.CorrelationID == sid+"/2" {
			evicted = true
		}
	}
	if !evicted {
		t.Error("no connection.evicted carries the call's correlation id")
	}
	// and a call the server refuses for its own reasons is not retried
	if _, body := send(t, http.MethodPost, u, sid, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"none"}}`, nil); !strings.Contains(body, "-32602") {
		t.Errorf("unknown tool: %s", body)
	}
}
