package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// batch is a run of events of one stream, appended in one call.
type batch struct {
	stream string
	evs    []events.Envelope
}

// genLog writes a realistic mixed log of about n events, deterministically from seed:
// app and private servers registered and inspected (tool catalogues with schemas),
// then mostly connection traffic (opened, tool calls, evicted, refused, failed, lost)
// with occasional config changes, inspection failures and recoveries. Positions are
// assigned as an empty store would, so decision inputs carry real versions.
func genLog(tb testing.TB, n int, seed uint64) []batch {
	tb.Helper()
	var out []batch
	genLogTo(tb, n, seed, func(b batch) { out = append(out, b) })
	return out
}

// genLogTo is genLog handing each batch to sink as it is made.
func genLogTo(tb testing.TB, n int, seed uint64, sink func(batch)) {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pos := uint64(0)
	id := 0
	now := t0
	emit := func(facts ...any) {
		var b batch
		for _, f := range facts {
			id++
			pos++
			now = now.Add(time.Duration(1+r.IntN(50)) * time.Millisecond)
			env, err := events.New(f, events.Meta{ID: fmt.Sprintf("0190%04x-0000-7000-8000-%012x", seed&0xffff, id),
				Source: "mcpes://bench", Time: now, Actor: "system", Reason: "generated"})
			if err != nil {
				tb.Fatal(err)
			}
			b.stream = env.Subject
			b.evs = append(b.evs, env)
		}
		sink(b)
	}
	type srv struct {
		scope   domain.Scope
		name    string
		version uint64
		failed  bool
	}
	tools := func(k int) []domain.Tool {
		ts := make([]domain.Tool, k)
		for i := range ts {
			ts[i] = domain.Tool{Name: fmt.Sprintf("tool_%02d", i), Description: "Does thing number " + fmt.Sprint(i) + " to the input.",
				InputSchema: domain.RawJSON(`{"type":"object","properties":{"path":{"type":"string","description":"a path"},"limit":{"type":"integer"}},"required":["path"]}`)}
		}
		return ts
	}
	var servers []*srv
	register := func(scope domain.Scope, name string) {
		cfg := domain.ServerConfig{Type: "streamable-http", URL: "https://" + name + ".example.com/mcp",
			Headers: map[string]string{"Authorization": domain.SecretRef([]byte("k"), name)}, TimeoutMS: 30000}
		emit(domain.ServerRegistered{Scope: scope, Name: name, Config: cfg})
		s := &srv{scope: scope, name: name, version: pos}
		ts := tools(4 + r.IntN(8))
		emit(domain.ServerInspected{Scope: scope, Name: name, ConfigVersion: s.version, ServerName: name, ServerVersion: "1.0.0",
			ProtocolVersion: "2025-11-25", Capabilities: domain.Capabilities{Tools: true}, Tools: ts, Digest: domain.CatalogueDigest(ts), DurationMS: 12})
		servers = append(servers, s)
	}
	for i := range 40 {
		register(domain.AppScope, fmt.Sprintf("app-%02d", i))
	}
	owners := make([]string, 300)
	for i := range owners {
		owners[i] = fmt.Sprintf("user-%03d", i)
		if i%5 == 0 {
			register(domain.UserScope(owners[i]), fmt.Sprintf("mine-%d", i%7))
		}
	}
	type conn struct {
		id      string
		version uint64
	}
	open := map[string]conn{}
	for int(pos) < n {
		s := servers[r.IntN(len(servers))]
		owner := s.scope.Owner()
		if s.scope.IsApp() {
			owner = ""
			if r.IntN(4) > 0 {
				owner = owners[r.IntN(len(owners))]
			}
		}
		view := domain.ConfigView{Found: true, Scope: s.scope, Version: s.version, InspectionFailed: s.failed, Startup: true}
		k := owner + "/" + s.name
		c, has := open[k]
		in := domain.DecisionInputs{Owner: owner, Server: s.name, Position: pos, Config: view, ExistingState: domain.ConnNone}
		if has {
			in.ExistingState, in.ExistingVersion = domain.ConnAlive, c.version
		}
		switch x := r.IntN(100); {
		case x < 3: // config change: connections become stale
			emit(domain.ServerConfigChanged{Scope: s.scope, Name: s.name, Changed: []string{"timeout"},
				Config: domain.ServerConfig{Type: "streamable-http", URL: "https://" + s.name + ".example.com/mcp", TimeoutMS: int64(1000 + r.IntN(9000))}})
			s.version, s.failed = pos, false
		case x < 5:
			if s.failed {
				ts := tools(5)
				emit(domain.ServerInspected{Scope: s.scope, Name: s.name, ConfigVersion: s.version, Tools: ts, Digest: domain.CatalogueDigest(ts), Recovered: true})
				s.version, s.failed = pos, false
			} else {
				emit(domain.ServerInspectionFailed{Scope: s.scope, Name: s.name, ConfigVersion: s.version, Class: domain.FailureUnreachable,
					Message: "dial tcp 10.0.0.1:443: connect: connection refused", DurationMS: 3})
				s.failed = true
			}
		case s.failed || x < 15:
			rule := domain.RuleInspectionFailed
			if !s.failed {
				rule = domain.RuleBreakerOpen
				in.BreakerOpen = true
			}
			emit(domain.ConnectionRefused{Inputs: in, Rule: rule, Count: 1 + r.IntN(3)})
		case has && c.version != s.version:
			id++
			nc := conn{id: fmt.Sprintf("c%08d", id), version: s.version}
			emit(domain.ConnectionEvicted{Inputs: in, Reason: domain.EvictStale, ConnID: c.id})
			in.Position, in.ExistingState, in.ExistingVersion = pos, domain.ConnNone, 0
			emit(domain.ConnectionOpened{Inputs: in, Replaced: domain.EvictStale, ConnID: nc.id, ProtocolVersion: "2025-11-25", DurationMS: 2})
			open[k] = nc
		case has && x < 50:
			calls := make([]any, 1+r.IntN(4))
			for i := range calls {
				calls[i] = domain.ToolCalled{Owner: owner, Server: s.name, Tool: "tool_01", Outcome: "ok", DurationMS: 3, ArgsDigest: "9f86d081884c7d659a2feaa0c55ad015"}
			}
			emit(calls...)
		case has && x < 60:
			emit(domain.ConnectionLost{Owner: owner, Server: s.name, ConnID: c.id, ConfigVersion: c.version, Error: "stream closed"})
			delete(open, k)
		case has:
			emit(domain.ConnectionEvicted{Inputs: in, Reason: domain.EvictIdle, ConnID: c.id})
			delete(open, k)
		case x < 65:
			emit(domain.ConnectionOpenFailed{Inputs: in, Class: domain.FailureTimeout, Message: "initialize timed out", DurationMS: 30000, Attempt: 1})
		default:
			id++
			nc := conn{id: fmt.Sprintf("c%08d", id), version: s.version}
			emit(domain.ConnectionOpened{Inputs: in, ConnID: nc.id, ProtocolVersion: "2025-11-25", DurationMS: 2})
			open[k] = nc
		}
	}
}

// appendAll writes the batches to st in order.
func appendAll(tb testing.TB, st store.Store, batches []batch) {
	tb.Helper()
	ctx := context.Background()
	for _, b := range batches {
		if _, err := st.Append(ctx, b.stream, store.AnyVersion, b.evs...); err != nil {
			tb.Fatalf("append %s: %v", b.stream, err)
		}
	}
}
