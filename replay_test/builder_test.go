package replaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// builder records a scenario the way the service would: every server command goes
// through its domain decide function, and every connection decision reads the live
// projection (Effective, with its position) and runs domain.DecideGet, so the facts
// carry realistic decision inputs. Ids and times are deterministic.
type builder struct {
	tb       testing.TB
	scenario int
	st       *memory.Store
	servers  *projections.Servers
	n        int
	now      time.Time
	live     map[string]*liveConn // owner/server -> connection the repository holds
	conns    int
}

type liveConn struct {
	id      string
	version uint64
	dead    bool
}

func newBuilder(tb testing.TB, scenario int) *builder {
	tb.Helper()
	st := memory.New()
	tb.Cleanup(func() { _ = st.Close() })
	s, err := projections.Load(context.Background(), st, projections.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return &builder{tb: tb, scenario: scenario, st: st, servers: s,
		now: time.Date(2026, 5, 4, 14, 0, 0, 0, time.UTC), live: map[string]*liveConn{}}
}

// wait moves the scenario clock on.
func (b *builder) wait(d time.Duration) { b.now = b.now.Add(d) }

func (b *builder) emit(actor, reason string, facts ...any) {
	b.tb.Helper()
	for _, f := range facts {
		b.n++
		b.now = b.now.Add(250 * time.Millisecond)
		env, err := events.New(f, events.Meta{
			ID:     fmt.Sprintf("01960000-%04x-7000-8000-%012x", b.scenario, b.n),
			Source: "mcpes://replay-fixture", Time: b.now, Actor: actor, Reason: reason,
			CorrelationID: fmt.Sprintf("scenario-%d", b.scenario),
		})
		if err != nil {
			b.tb.Fatal(err)
		}
		if _, err := b.st.Append(context.Background(), env.Subject, store.AnyVersion, env); err != nil {
			b.tb.Fatal(err)
		}
	}
}

func (b *builder) state(scope domain.Scope, name string) domain.ServerState {
	st, _ := b.servers.State(scope, name)
	return st
}

func (b *builder) must(facts []any, err error) []any {
	b.tb.Helper()
	if err != nil {
		b.tb.Fatal(err)
	}
	return facts
}

func actorOf(scope domain.Scope) string {
	if scope.IsApp() {
		return "admin"
	}
	return "owner:" + scope.Owner()
}

func (b *builder) put(scope domain.Scope, name string, cfg domain.ServerConfig) {
	b.tb.Helper()
	sealed, _ := domain.SealSecrets(cfg, func(v string) string { return domain.SecretRef([]byte("fixture-key"), v) })
	b.emit(actorOf(scope), "put", b.must(domain.DecidePutServer(b.state(scope, name), scope, name, sealed, ""))...)
}

func (b *builder) remove(scope domain.Scope, name string) {
	b.tb.Helper()
	b.emit(actorOf(scope), "remove", b.must(domain.DecideRemoveServer(b.state(scope, name), domain.RemoveServer{Scope: scope, Name: name}))...)
}

func tools(names ...string) []domain.Tool {
	out := make([]domain.Tool, len(names))
	for i, n := range names {
		out[i] = domain.Tool{Name: n, Description: "The " + n + " tool.", InputSchema: domain.RawJSON(`{"type":"object","properties":{"q":{"type":"string"}}}`)}
	}
	return out
}

func (b *builder) inspect(scope domain.Scope, name string, o domain.InspectionOutcome) {
	b.tb.Helper()
	st := b.state(scope, name)
	if o.Duration == 0 {
		o.Duration = 42 * time.Millisecond
	}
	facts := b.must(domain.DecideRecordInspection(st, domain.RecordInspection{Scope: scope, Name: name, InspectedVersion: st.Version, Outcome: o}))
	b.emit("system", "inspection", facts...)
}

func (b *builder) inspectOK(scope domain.Scope, name string, toolNames ...string) {
	b.inspect(scope, name, domain.InspectionOutcome{OK: true, ServerName: name, ServerVersion: "1.0.0", ProtocolVersion: "2025-11-25",
		Capabilities: domain.Capabilities{Tools: true}, Tools: tools(toolNames...)})
}

func (b *builder) inspectFail(scope domain.Scope, name string, class domain.FailureClass, msg string) {
	b.inspect(scope, name, domain.InspectionOutcome{Class: class, Message: msg, Duration: 3 * time.Second})
}

func (b *builder) reinspect(scope domain.Scope, name string) {
	b.tb.Helper()
	b.emit(actorOf(scope), "reinspect", b.must(domain.DecideRequestReinspection(b.state(scope, name), domain.RequestReinspection{Scope: scope, Name: name}))...)
}

// inputs reads what a repository would read before deciding for (owner, server).
func (b *builder) inputs(owner, server string, breaker bool) domain.DecisionInputs {
	_, view, pos := b.servers.Effective(owner, server)
	in := domain.DecisionInputs{Owner: owner, Server: server, Position: pos, Config: view, ExistingState: domain.ConnNone, BreakerOpen: breaker}
	if c := b.live[owner+"/"+server]; c != nil {
		in.ExistingVersion, in.ExistingState = c.version, domain.ConnAlive
		if c.dead {
			in.ExistingState = domain.ConnDead
		}
	}
	return in
}

func ownerActor(owner string) string {
	if owner == "" {
		return "system"
	}
	return "owner:" + owner
}

// getOpts shape one Get: whether the upstream connect fails, whether the breaker is open.
type getOpts struct {
	connectFails bool
	breaker      bool
	count        int
}

// get records a repository Get: the decision, the eviction it implies and the
// connect's outcome or the refusal.
func (b *builder) get(owner, server string, o getOpts) {
	b.tb.Helper()
	in := b.inputs(owner, server, o.breaker)
	d := domain.DecideGet(in)
	key := owner + "/" + server
	if d.Evict != "" {
		c := b.live[key]
		b.emit(ownerActor(owner), "get", domain.ConnectionEvicted{Inputs: in, Reason: d.Evict, Rule: d.Rule, ConnID: c.id})
		delete(b.live, key)
	}
	switch d.Action {
	case domain.ActionReuse:
		return // a counter, not an event
	case domain.ActionRefuse:
		count := max(o.count, 1)
		b.emit(ownerActor(owner), "get", domain.ConnectionRefused{Inputs: in, Rule: d.Rule, Count: count})
	case domain.ActionConnect:
		if o.connectFails {
			b.emit(ownerActor(owner), "get", domain.ConnectionOpenFailed{Inputs: in, Class: domain.FailureUnreachable,
				Message: "dial tcp 127.0.0.1:9: connect: connection refused", DurationMS: 2, Attempt: 1})
			return
		}
		b.conns++
		id := fmt.Sprintf("conn-%d-%03d", b.scenario, b.conns)
		b.emit(ownerActor(owner), "get", domain.ConnectionOpened{Inputs: in, Replaced: d.Evict, ConnID: id, ProtocolVersion: "2025-11-25", DurationMS: 1})
		b.live[key] = &liveConn{id: id, version: in.Config.Version}
	}
}

// evict records an eviction that is not a Get decision (idle, explicit, shutdown).
func (b *builder) evict(owner, server string, reason domain.EvictReason) {
	b.tb.Helper()
	key := owner + "/" + server
	c := b.live[key]
	if c == nil {
		b.tb.Fatalf("no connection %s to evict", key)
	}
	b.emit(ownerActor(owner), string(reason), domain.ConnectionEvicted{Inputs: b.inputs(owner, server, false), Reason: reason, ConnID: c.id})
	delete(b.live, key)
}

// lose records that a connection died; the repository still holds it, dead.
func (b *builder) lose(owner, server, why string) {
	b.tb.Helper()
	c := b.live[owner+"/"+server]
	b.emit("system", "lost", domain.ConnectionLost{Owner: owner, Server: server, ConnID: c.id, ConfigVersion: c.version, Error: why})
	c.dead = true
}

// jsonl returns the recorded log as JSON Lines of sealed envelopes.
func (b *builder) jsonl() []byte {
	b.tb.Helper()
	evs, err := b.st.ReadAll(context.Background(), 1, 0)
	if err != nil {
		b.tb.Fatal(err)
	}
	var buf bytes.Buffer
	for _, e := range evs {
		line, err := json.Marshal(e)
		if err != nil {
			b.tb.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}
