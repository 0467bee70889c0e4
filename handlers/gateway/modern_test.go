package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers/gateway"
)

// modernHdr is what a client of revision 2026-07-28 sends with every request.
var modernHdr = map[string]string{"MCP-Protocol-Version": "2026-07-28"}

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"raw","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}`

// answerOf is the JSON-RPC answer in body (plain JSON, or the event carrying it).
func answerOf(t *testing.T, body string) map[string]json.RawMessage {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "data: ")
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(l), &m) == nil && m["id"] != nil {
			return m
		}
	}
	t.Fatalf("no answer in %q", body)
	return nil
}

func TestAggregate_Revision20260728GoesThroughTheRelay(t *testing.T) {
	e, _ := clockEnv(t, func(d *gateway.Deps) { d.AuditToolCalls = gateway.AuditMetadata })
	agg := e.ts.URL + "/mcp"
	// when a 2026-07-28 client discovers /mcp
	res, body := send(t, http.MethodPost, agg, "", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+modernMeta+`}}`, modernHdr)
	// then it is offered that revision, without a session
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"2026-07-28"`) || res.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("discover: %d %s %v", res.StatusCode, body, res.Header)
	}
	// and its tools/list entries are those a session client gets
	_, body = send(t, http.MethodPost, agg, "", `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{`+modernMeta+`}}`, modernHdr)
	modern := answerOf(t, body)["result"]
	sid := initSession(t, agg, "2025-11-25")
	_, body = send(t, http.MethodPost, agg, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, nil)
	legacy := answerOf(t, body)["result"]
	var a, b any
	if json.Unmarshal(modern, &a) != nil || json.Unmarshal(legacy, &b) != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("entries differ:\n2026-07-28 %s\nsession    %s", modern, legacy)
	}
	// and a call is recorded with the request as its correlation id
	res, body = send(t, http.MethodPost, agg, "",
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{`+modernMeta+`,"name":"clock__echo","arguments":{"text":"x"}}}`, modernHdr)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"text":"x"`) {
		t.Fatalf("call: %d %s", res.StatusCode, body)
	}
	evs, err := e.st.ReadAll(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var corr []string
	for _, ev := range evs {
		if ev.Type == events.TypeToolCalled {
			corr = append(corr, ev.CorrelationID)
		}
	}
	if len(corr) != 1 || !strings.HasSuffix(corr[0], "/7") || strings.HasPrefix(corr[0], sid) {
		t.Fatalf("tool.called correlation ids %q", corr)
	}
	// and an unknown tool is the relay's -32602, as HTTP 400 as the revision says
	res, body = send(t, http.MethodPost, agg, "", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"clock__none"}}`, modernHdr)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "-32602") {
		t.Fatalf("unknown tool: %d %s", res.StatusCode, body)
	}
	// and resources/subscribe, replaced by the listen filter, is not relayed
	res, body = send(t, http.MethodPost, agg, "", `{"jsonrpc":"2.0","id":9,"method":"resources/subscribe","params":{"uri":"mcpes://clock/clock://zones"}}`, modernHdr)
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "-32601") {
		t.Fatalf("subscribe: %d %s", res.StatusCode, body)
	}
	// and a GET without a session is not part of the revision
	if res, _ := send(t, http.MethodGet, agg, "", "", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", res.StatusCode)
	}
}

func TestAggregate_Revision20260728ListenHearsListChanges(t *testing.T) {
	e, _ := clockEnv(t)
	agg := e.ts.URL + "/mcp"
	// given a 2026-07-28 client listening for tool list changes only
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, agg, strings.NewReader(
		`{"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true}}}`))
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	next := func() string {
		for lines.Scan() {
			if d, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				return d
			}
		}
		t.Fatalf("stream ended: %v", lines.Err())
		return ""
	}
	// then the stream is acknowledged with what it may hear
	if ack := next(); !strings.Contains(ack, "notifications/subscriptions/acknowledged") || !strings.Contains(ack, `"toolsListChanged":true`) {
		t.Fatalf("ack %s", ack)
	}
	// when a server joins alice's offer
	clock2 := startClock(t, "127.0.0.1:0")
	e.put(domain.UserScope("alice"), "second", httpCfg(clock2.URL))
	// then the stream carries the tools change, tagged with the listen request
	if msg := next(); !strings.Contains(msg, "notifications/tools/list_changed") || !strings.Contains(msg, `"io.modelcontextprotocol/subscriptionId":"sub-1"`) {
		t.Fatalf("change %s", msg)
	}
}
