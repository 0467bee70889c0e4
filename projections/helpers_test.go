package projections

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// logWriter appends facts to a store with deterministic ids and times, one second apart.
type logWriter struct {
	tb testing.TB
	st store.Store
	n  int
}

func newLog(tb testing.TB) (*memory.Store, *logWriter) {
	tb.Helper()
	st := memory.New()
	tb.Cleanup(func() { _ = st.Close() })
	return st, &logWriter{tb: tb, st: st}
}

func (w *logWriter) envelope(fact any) events.Envelope {
	w.tb.Helper()
	w.n++
	env, err := events.New(fact, events.Meta{
		ID:     fmt.Sprintf("01900000-0000-7000-8000-%012x", w.n),
		Source: "mcpes://test", Time: t0.Add(time.Duration(w.n) * time.Second), Actor: "system",
	})
	if err != nil {
		w.tb.Fatalf("new event: %v", err)
	}
	return env
}

// add appends facts, each to its own stream, and returns the last position.
func (w *logWriter) add(facts ...any) uint64 {
	w.tb.Helper()
	var pos uint64
	for _, f := range facts {
		env := w.envelope(f)
		res, err := w.st.Append(context.Background(), env.Subject, store.AnyVersion, env)
		if err != nil {
			w.tb.Fatalf("append %T: %v", f, err)
		}
		pos = res.Positions[0]
	}
	return pos
}

func registered(scope domain.Scope, name, url string) domain.ServerRegistered {
	return domain.ServerRegistered{Scope: scope, Name: name, Config: domain.ServerConfig{Type: "streamable-http", URL: url}}
}

func inspected(scope domain.Scope, name string, version uint64, tools ...string) domain.ServerInspected {
	ts := make([]domain.Tool, 0, len(tools))
	for _, n := range tools {
		ts = append(ts, domain.Tool{Name: n, Description: "tool " + n, InputSchema: domain.RawJSON(`{"type":"object"}`)})
	}
	return domain.ServerInspected{Scope: scope, Name: name, ConfigVersion: version, Tools: ts, Digest: domain.CatalogueDigest(ts)}
}

func opened(owner, server string, version, pos uint64, connID string) domain.ConnectionOpened {
	return domain.ConnectionOpened{ConnID: connID, Inputs: domain.DecisionInputs{Owner: owner, Server: server, Position: pos,
		Config: domain.ConfigView{Found: true, Scope: domain.AppScope, Version: version, Startup: true}, ExistingState: domain.ConnNone}}
}

func evicted(owner, server, connID string, reason domain.EvictReason) domain.ConnectionEvicted {
	return domain.ConnectionEvicted{ConnID: connID, Reason: reason, Inputs: domain.DecisionInputs{Owner: owner, Server: server, ExistingState: domain.ConnAlive}}
}

func rebuild(tb testing.TB, st store.Store) *Servers {
	tb.Helper()
	s, err := AsOf(context.Background(), st, ^uint64(0))
	if err != nil {
		tb.Fatalf("rebuild: %v", err)
	}
	return s
}
