package upstream

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// namedPeer accepts every elicitation with its own name, after waiting a little
// for the other session's call to be in flight too (so that, were calls not to
// take turns, both elicitations would be pending at once).
type namedPeer struct {
	name  string
	other <-chan struct{}
	mu    sync.Mutex
	asked int
}

func (p *namedPeer) Notify(string, json.RawMessage) {}

func (p *namedPeer) Request(ctx context.Context, method string, _ json.RawMessage) (*Response, error) {
	p.mu.Lock()
	p.asked++
	p.mu.Unlock()
	select {
	case <-p.other:
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
	}
	return &Response{Result: json.RawMessage(`{"action":"accept","content":{"name":"` + p.name + `","check":true}}`)}, nil
}

func TestRelay_StdioServerRequestsGoToTheirSession(t *testing.T) {
	t.Parallel()
	env := testnpm.Require(t)
	// given one stdio connection to server-everything, whose
	// trigger-elicitation-request tool asks its client to fill a form
	cmd, args := env.Command(t, "mcp-server-everything", "stdio")
	c := dialT(t, "everything", domain.ServerConfig{Command: cmd, Args: args, InitTimeoutMS: 20000}, appOpts(t))
	startedA, startedB := make(chan struct{}), make(chan struct{})
	a := &namedPeer{name: "alice", other: startedB}
	b := &namedPeer{name: "bob", other: startedA}
	// when two client sessions call it at the same time
	results := make([]string, 2)
	var wg sync.WaitGroup
	for i, p := range []*namedPeer{a, b} {
		started := []chan struct{}{startedA, startedB}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			close(started)
			resp, err := c.Relay(ctxT(t, 60*time.Second), "tools/call",
				json.RawMessage(`{"name":"trigger-elicitation-request","arguments":{}}`), p)
			if err != nil || resp.Error != nil {
				t.Errorf("%s: %+v, %v", p.name, resp, err)
				return
			}
			results[i] = string(resp.Result)
		}()
	}
	wg.Wait()
	// then each session answered its own elicitation, and each call's result
	// carries its own session's answer
	if a.asked != 1 || b.asked != 1 {
		t.Fatalf("asked alice %d, bob %d times", a.asked, b.asked)
	}
	if !strings.Contains(results[0], "alice") || strings.Contains(results[0], "bob") ||
		!strings.Contains(results[1], "bob") || strings.Contains(results[1], "alice") {
		t.Fatalf("results %q", results)
	}
}

func TestConn_Turn(t *testing.T) {
	// given a connection where mcpes cannot route server requests (no HTTP)
	c := &Conn{}
	a, b := &namedPeer{name: "a"}, &namedPeer{name: "b"}
	ctx := ctxT(t, 10*time.Second)
	endA1, _ := c.turn(ctx, a)
	endA2, err := c.turn(ctx, a)
	// then calls of one peer run together
	if err != nil {
		t.Fatalf("second call of a: %v", err)
	}
	// and a call of another peer waits until they end
	gotB := make(chan func())
	go func() { end, _ := c.turn(ctx, b); gotB <- end }()
	waitFor(t, func() bool { c.relay.mu.Lock(); defer c.relay.mu.Unlock(); return c.relay.turnWaiting == 1 })
	// and a new call of the peer in turn does not overtake the waiting one
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.turn(short, a); err == nil {
		t.Fatal("a overtook b")
	}
	endA1()
	select {
	case <-gotB:
		t.Fatal("b ran while a was in flight")
	default:
	}
	endA2()
	endB := <-gotB
	// and a nil peer never waits
	if end, err := c.turn(short, nil); err != nil {
		t.Fatalf("nil peer: %v", err)
	} else {
		end()
	}
	endB()
	if c.relay.turnCalls != 0 || c.relay.turnWaiting != 0 || c.relay.turnPeer != nil {
		t.Fatalf("state after: %d calls, %d waiting", c.relay.turnCalls, c.relay.turnWaiting)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
