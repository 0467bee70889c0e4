package main

import (
	"context"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

func TestReadiness_ReportsInspectionAndRelayLag(t *testing.T) {
	// given three events in the log, a relay that has published none of them and a
	// registry whose startup inspection has not run
	ctx := context.Background()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	for _, name := range []string{"a", "b", "c"} {
		testevents.Append(t, st, "system", domain.ServerRegistered{Scope: domain.AppScope, Name: name,
			Config: domain.ServerConfig{Command: "x"}})
	}
	servers, err := projections.Load(ctx, st, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(st, servers, &upstream.Guard{}, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	inproc := relay.NewInProcess(nil)
	t.Cleanup(func() { _ = inproc.Close() })
	r, err := relay.New(relay.Config{Store: st, Publisher: inproc.Publisher(), Name: "relay:test"})
	if err != nil {
		t.Fatal(err)
	}
	m := &Main{registry: reg, relay: r}

	// when readiness is asked
	ready, detail := m.readiness()

	// then it is not ready, and says why and how far the relay is behind
	d, ok := detail.(readyDetail)
	if ready || !ok || d.Inspection != "running" || d.Relay != "relay:test" || d.RelayLagEvents != 3 {
		t.Fatalf("ready %v, detail %+v", ready, detail)
	}
}
