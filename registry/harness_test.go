package registry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

type harness struct {
	Store store.Store
	Proj  *projections.Servers
	Svc   *registry.Service
}

func quietLogger() *slog.Logger {
	if os.Getenv("REGISTRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

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
	proj, err := projections.Load(context.Background(), st, projections.Options{Logger: opts.Logger})
	if err != nil {
		tb.Fatal(err)
	}
	var svc *registry.Service
	svc, err = registry.New(st, proj, &upstream.Guard{}, opts)
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

// state reads a server's state from the projection.
func (h *harness) state(scope domain.Scope, name string) domain.ServerState {
	st, _ := h.Proj.State(scope, name)
	return st
}
