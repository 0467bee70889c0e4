package registry_test

import (
	"strings"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store/memory"
	"github.com/mcpes/mcpes/upstream"
)

func TestOptions_Validate(t *testing.T) {
	cases := map[string]struct {
		opts registry.Options
		want string // substring of the error; "" for valid
	}{
		"zero value":       {opts: registry.Options{}},
		"sync":             {opts: registry.Options{InspectOnPut: registry.InspectSync}},
		"unknown mode":     {opts: registry.Options{InspectOnPut: "sometimes"}, want: "InspectOnPut"},
		"node id slash":    {opts: registry.Options{NodeID: "a/b"}, want: "NodeID"},
		"negative retries": {opts: registry.Options{ConflictRetries: -1}, want: "ConflictRetries"},
		"negative bound":   {opts: registry.Options{StartupConcurrency: -2}, want: "StartupConcurrency"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// given a memory store and projection
			h := newHarness(t, nil, registry.Options{})

			// when a service is built with the options
			_, err := registry.New(h.Store, h.Proj, &upstream.Guard{}, tc.opts)

			// then bad options are an error naming the field
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error = %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one about %s", err, tc.want)
			}
		})
	}
}

func TestNew_PanicsOnNilDependency(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a nil projection")
		}
	}()
	_, _ = registry.New(memory.New(), nil, &upstream.Guard{}, registry.Options{})
}

func TestService_ClosedRefusesCommands(t *testing.T) {
	// given a closed service
	h := newHarness(t, nil, registry.Options{})
	_ = h.Svc.Close()

	// when a command is sent
	_, err := h.Svc.Put(ctx(t), "admin", "app", "docs", httpConfig("https://docs.example.com/mcp"))

	// then it is refused with ErrClosed
	wantErr(t, err, registry.ErrClosed)
}

func TestService_RefusesCommandsWithoutActorOrScope(t *testing.T) {
	// given a registry
	h := newHarness(t, nil, registry.Options{})
	cfg := httpConfig("https://docs.example.com/mcp")

	// when commands come without an actor, or for a malformed scope
	_, errActor := h.Svc.Put(ctx(t), "", domain.AppScope, "docs", cfg)
	_, errScope := h.Svc.Put(ctx(t), "admin", domain.Scope("user:"), "docs", cfg)
	errRemove := h.Svc.Remove(ctx(t), "", domain.AppScope, "docs")

	// then they are refused and nothing is written
	wantErr(t, errActor, registry.ErrNoActor)
	wantErr(t, errScope, domain.ErrInvalidConfig)
	wantErr(t, errRemove, registry.ErrNoActor)
	if h.head(t) != 0 {
		t.Fatalf("head = %d", h.head(t))
	}
}
