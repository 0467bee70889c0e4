package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// answeringPeer answers every server request with a fixed result and records them.
type answeringPeer struct {
	mu     sync.Mutex
	asked  []string
	result string
}

func (p *answeringPeer) Notify(string, json.RawMessage) {}

func (p *answeringPeer) Request(_ context.Context, method string, _ json.RawMessage) (*Response, error) {
	p.mu.Lock()
	p.asked = append(p.asked, method)
	p.mu.Unlock()
	return &Response{Result: json.RawMessage(p.result)}, nil
}

func TestRelay_SSEServerRequests(t *testing.T) {
	t.Parallel()
	env := testnpm.Require(t)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			// given server-everything over the legacy SSE transport, whose
			// trigger-sampling-request tool asks its client for a sampling
			p := env.StartHTTP(t, "mcp-server-everything", nil, "sse")
			cfg := domain.ServerConfig{Type: "sse", URL: fmt.Sprintf("http://127.0.0.1:%d/sse", p.Port), InitTimeoutMS: 20000}
			opts := appOpts(t)
			opts.ProtocolVersion = era.pin
			c := dialT(t, "everything", cfg, opts)
			peer := &answeringPeer{result: `{"role":"assistant","content":{"type":"text","text":"sampled through sse"},"model":"m"}`}
			// when the tool is called through the relay
			resp, err := c.Relay(ctxT(t, 30*time.Second), "tools/call",
				json.RawMessage(`{"name":"trigger-sampling-request","arguments":{"prompt":"hi"}}`), peer)
			// then the sampling request reached the peer and its answer the server
			if err != nil || resp.Error != nil {
				t.Fatalf("call: %+v, %v", resp, err)
			}
			if !strings.Contains(string(resp.Result), "sampled through sse") {
				t.Fatalf("result %s", resp.Result)
			}
			peer.mu.Lock()
			defer peer.mu.Unlock()
			if len(peer.asked) != 1 || peer.asked[0] != "sampling/createMessage" {
				t.Fatalf("asked %v", peer.asked)
			}
		})
	}
}

// filterAll reads stream through an sseFilter in small reads and returns what it
// passed on and the requests it took out.
func filterAll(stream []byte, max int) (out []byte, reqs [][]byte) {
	f := &sseFilter{body: io.NopCloser(bytes.NewReader(stream)), max: max, onRequest: func(b []byte) { reqs = append(reqs, b) }}
	f.br = bufio.NewReaderSize(f.body, 16)
	buf := make([]byte, 7)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	return out, reqs
}

func TestSSEFilter(t *testing.T) {
	// given an event stream with an endpoint, a response, a notification and a request
	stream := "event: endpoint\ndata: /message?sessionId=1\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n" +
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n" +
		"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"method\":\"roots/list\"}\r\n\r\n" +
		": comment\n\n"
	// when it is read through the filter
	out, reqs := filterAll([]byte(stream), 1<<10)
	// then only the request is taken out, its data lines joined
	want := strings.Replace(stream, "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\r\ndata: \"method\":\"roots/list\"}\r\n\r\n", "", 1)
	if string(out) != want {
		t.Fatalf("passed on %q, want %q", out, want)
	}
	if len(reqs) != 1 || string(reqs[0]) != "{\"jsonrpc\":\"2.0\",\"id\":7,\n\"method\":\"roots/list\"}" {
		t.Fatalf("requests %q", reqs)
	}
	// and an event longer than the bound passes on unread, even when it is a request
	long := "data: {\"id\":1,\"method\":\"roots/list\",\"params\":{\"x\":\"" + strings.Repeat("a", 100) + "\"}}\n\n"
	if out, reqs := filterAll([]byte(long), 50); string(out) != long || len(reqs) != 0 {
		t.Fatalf("long event: %q, %q", out, reqs)
	}
}

func FuzzSSEFilter(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"id\":1,\"method\":\"sampling/createMessage\"}\n\n"), 64)
	f.Add([]byte("data: {\"id\":1,\"result\":{}}\r\n\r\nevent: endpoint\ndata: /m\n\n"), 8)
	f.Fuzz(func(t *testing.T, stream []byte, max int) {
		if max < 1 || max > 1<<16 {
			return
		}
		out, reqs := filterAll(stream, max)
		// nothing is invented, and a stream without requests passes unchanged
		if len(out) > len(stream) {
			t.Fatalf("out longer than in")
		}
		if len(reqs) == 0 && !bytes.Equal(out, stream) {
			t.Fatalf("changed a stream without requests: %q -> %q", stream, out)
		}
	})
}
