package registry_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
)

func fileServers() map[string]domain.ServerConfig {
	return map[string]domain.ServerConfig{
		"docs": httpConfig("https://docs.example.com/mcp"),
		"search": {Type: "sse", URL: "https://search.example.com/sse",
			Headers: map[string]string{"X-Api-Key": "key-7c0ffee", "X-Team": "${TEAM}"}},
		"clock": {Command: "clock", Env: map[string]string{"TZ": "UTC", "TOKEN": "${CLOCK_TOKEN}"}},
	}
}

func TestService_Reconcile_AppliesOnlyDifferences(t *testing.T) {
	// given a registry reconciled once with a file
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	rep, err := h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: fileServers()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Registered, []string{"clock", "docs", "search"}) || rep.Changed != nil || rep.Removed != nil {
		t.Fatalf("first reconcile = %+v", rep)
	}
	head := h.head(t)

	// when the same file is reconciled again
	rep, err = h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: fileServers()})
	// then nothing is written
	if err != nil || rep.Registered != nil || rep.Changed != nil || rep.Removed != nil || h.head(t) != head {
		t.Fatalf("same file: %+v, %v, head %d→%d", rep, err, head, h.head(t))
	}

	// when one server changes, one disappears and one appears
	file := fileServers()
	file["docs"] = httpConfig("https://docs2.example.com/mcp")
	delete(file, "search")
	file["notes"] = httpConfig("https://notes.example.com/mcp")
	rep, err = h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: file})

	// then exactly those three are recorded
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Registered, []string{"notes"}) || !slices.Equal(rep.Changed, []string{"docs"}) ||
		!slices.Equal(rep.Removed, []string{"search"}) || h.head(t) != head+3 {
		t.Fatalf("reconcile = %+v, head %d→%d", rep, head, h.head(t))
	}
	if got := h.state(domain.AppScope, "clock").Config.Env["TOKEN"]; got != "${CLOCK_TOKEN}" {
		t.Fatalf("placeholder env = %q, want it kept as is", got)
	}
}

func TestService_Reconcile_BadFileAppliesNothing(t *testing.T) {
	// given a registry holding one app server
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	if _, err := h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: map[string]domain.ServerConfig{"old": httpConfig("https://old.example.com/mcp")}}); err != nil {
		t.Fatal(err)
	}

	// when a file with two good servers and two bad ones is reconciled
	file := fileServers()
	file["broken"] = domain.ServerConfig{Type: "sse"}
	file["bad/name"] = httpConfig("https://x.example.com/mcp")
	_, err := h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: file})

	// then every bad server is named and nothing is applied (not even the removal)
	var verr *domain.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v, want *domain.ValidationError", err)
	}
	named := map[string]bool{}
	for _, p := range verr.Problems {
		named[p.Server] = true
	}
	if !named["broken"] || !named["bad/name"] {
		t.Fatalf("problems = %+v, want both bad servers named", verr.Problems)
	}
	if h.head(t) != 1 || !h.state(domain.AppScope, "old").Exists {
		t.Fatalf("head = %d, want the bad file to apply nothing", h.head(t))
	}
}
