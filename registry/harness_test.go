package registry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// foldProjection is an interim server projection (until projections.Servers lands).
type foldProjection struct {
	mu     sync.RWMutex
	states map[domain.Scope]map[string]domain.ServerState
}

func newFold(tb testing.TB, st store.Store) *foldProjection {
	tb.Helper()
	p := &foldProjection{states: map[domain.Scope]map[string]domain.ServerState{}}
	evs, err := st.ReadAll(context.Background(), 1, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	p.apply(evs)
	st.Observe(p.apply)
	return p
}

func (p *foldProjection) apply(evs []events.Envelope) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range evs {
		f, err := events.Decode(e)
		if err != nil {
			continue
		}
		var scope domain.Scope
		var name string
		switch f := f.(type) {
		case domain.ServerRegistered:
			scope, name = f.Scope, f.Name
		case domain.ServerConfigChanged:
			scope, name = f.Scope, f.Name
		case domain.ServerRemoved:
			scope, name = f.Scope, f.Name
		case domain.ServerInspected:
			scope, name = f.Scope, f.Name
		case domain.ServerInspectionFailed:
			scope, name = f.Scope, f.Name
		case domain.ServerToolsChanged:
			scope, name = f.Scope, f.Name
		case domain.ServerReinspectionRequested:
			scope, name = f.Scope, f.Name
		default:
			continue
		}
		if p.states[scope] == nil {
			p.states[scope] = map[string]domain.ServerState{}
		}
		p.states[scope][name] = p.states[scope][name].Apply(f, uint64(e.Sequence), e.Time)
	}
}

func (p *foldProjection) State(scope domain.Scope, name string) domain.ServerState {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.states[scope][name]
}

func (p *foldProjection) Names(scope domain.Scope) []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []string
	for n, s := range p.states[scope] {
		if s.Exists {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// allowGuard is an interim guard (until upstream.Guard lands).
type allowGuard struct{}

func (allowGuard) CheckURL(context.Context, string) error { return nil }

type harness struct {
	Store store.Store
	Proj  registry.Projection
	Svc   *registry.Service
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newHarness builds a service over st (a fresh memory store when nil) that inspects
// synchronously on Put.
func newHarness(tb testing.TB, st store.Store, opts registry.Options) *harness {
	tb.Helper()
	if st == nil {
		st = memory.New()
		tb.Cleanup(func() { _ = st.Close() })
	}
	if opts.InspectOnPut == "" {
		opts.InspectOnPut = registry.InspectSync
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	proj := newFold(tb, st)
	svc, err := registry.New(st, proj, allowGuard{}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = svc.Close() })
	return &harness{Store: st, Proj: proj, Svc: svc}
}

// streamTypes returns the event types of a server stream, in order.
func (h *harness) streamTypes(tb testing.TB, scope domain.Scope, name string) []string {
	tb.Helper()
	evs, err := h.Store.ReadStream(context.Background(), domain.ServerStream(scope, name), 1, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// head returns the store's head position.
func (h *harness) head(tb testing.TB) uint64 {
	tb.Helper()
	pos, _, err := h.Store.Head(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pos
}

func ctxT(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

func wantErr(tb testing.TB, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("error = %v, want %v", err, target)
	}
}
