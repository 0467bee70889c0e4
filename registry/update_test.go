package registry_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// racingStore is a real store in which another writer changes a server's config
// between the registry's read of the projection and its append, races times: the
// append the registry decided on a stale read then fails with a real version
// conflict from the store.
type racingStore struct {
	store.Store
	tb      testing.TB
	stream  string
	races   atomic.Int32
	appends atomic.Int32 // appends to stream at a concrete expected version
}

func (s *racingStore) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (store.AppendResult, error) {
	if stream == s.stream && expected != store.AnyVersion {
		s.appends.Add(1)
		if s.races.Add(-1) >= 0 {
			cfg := httpConfig("https://other-writer.example.com/mcp")
			testevents.Append(s.tb, s.Store, "admin", domain.ServerConfigChanged{Scope: domain.AppScope,
				Name: "docs", Config: cfg, Changed: []string{"url"}, Source: domain.SourceAPI})
		}
	}
	return s.Store.Append(ctx, stream, expected, evs...)
}

func TestService_Update_DecidesAgainAfterAVersionConflict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		races int32
		run   func(context.Context, *registry.Service) error
		check func(t *testing.T, h *harness, err error)
	}{
		{name: "put", races: 1,
			run: func(ctx context.Context, svc *registry.Service) error {
				_, err := svc.Put(ctx, "admin", domain.AppScope, "docs", httpConfig("https://mine.example.com/mcp"))
				return err
			},
			check: func(t *testing.T, h *harness, err error) {
				// then the put is decided again on the other writer's config and wins
				if err != nil {
					t.Fatalf("put after one conflict: %v", err)
				}
				st := h.state(domain.AppScope, "docs")
				if st.Config.URL != "https://mine.example.com/mcp" || st.ConfigVersion != 3 {
					t.Fatalf("state = %s v%d, want mine at config version 3", st.Config.URL, st.ConfigVersion)
				}
			}},
		{name: "remove", races: 1,
			run: func(ctx context.Context, svc *registry.Service) error {
				return svc.Remove(ctx, "admin", domain.AppScope, "docs")
			},
			check: func(t *testing.T, h *harness, err error) {
				if err != nil || h.state(domain.AppScope, "docs").Exists {
					t.Fatalf("remove after one conflict: %v, exists %v", err, h.state(domain.AppScope, "docs").Exists)
				}
			}},
		{name: "retries are bounded", races: 100,
			run: func(ctx context.Context, svc *registry.Service) error {
				return svc.Remove(ctx, "admin", domain.AppScope, "docs")
			},
			check: func(t *testing.T, h *harness, err error) {
				// then after ConflictRetries attempts the caller gets the conflict
				if !errors.Is(err, registry.ErrConflict) || !errors.Is(err, store.ErrVersionConflict) {
					t.Fatalf("error = %v, want ErrConflict wrapping the store's conflict", err)
				}
				if !h.state(domain.AppScope, "docs").Exists {
					t.Fatal("server removed although every attempt conflicted")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// given an app server registered through the API, and another writer that
			// changes it between the registry's read and its append
			mem := memory.New()
			t.Cleanup(func() { _ = mem.Close() })
			rs := &racingStore{Store: mem, tb: t, stream: domain.ServerStream(domain.AppScope, "docs")}
			h := newHarness(t, rs, registry.Options{InspectOnPut: registry.InspectOff, ConflictRetries: 3})
			ctx := ctxT(t, 10*time.Second)
			if _, err := h.Svc.Put(ctx, "admin", domain.AppScope, "docs", httpConfig("https://docs.example.com/mcp")); err != nil {
				t.Fatal(err)
			}
			rs.appends.Store(0)
			rs.races.Store(tc.races)

			// when the command runs
			err := tc.run(ctx, h.Svc)

			// then
			tc.check(t, h, err)
			want := min(tc.races+1, 3)
			if got := rs.appends.Load(); got != want {
				t.Fatalf("appends tried = %d, want %d", got, want)
			}
		})
	}
}

func TestService_Sources_FileAndAPIServersLiveSideBySide(t *testing.T) {
	// given a config file with one server and an admin's API server next to it
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	ctx := ctxT(t, 10*time.Second)
	file := registry.ConfigFile{Path: "/etc/mcpes.yaml", Lines: map[string]int{"docs": 7},
		Servers: map[string]domain.ServerConfig{"docs": httpConfig("https://docs.example.com/mcp")}}
	if _, err := h.Svc.Reconcile(ctx, file); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.Put(ctx, "admin", domain.AppScope, "extra", httpConfig("https://extra.example.com/mcp")); err != nil {
		t.Fatal(err)
	}
	if got := []domain.Source{h.state(domain.AppScope, "docs").AppSource(), h.state(domain.AppScope, "extra").AppSource()}; !slices.Equal(got, []domain.Source{domain.SourceFile, domain.SourceAPI}) {
		t.Fatalf("sources = %v", got)
	}

	// when the API tries to change or remove the file's server
	_, putErr := h.Svc.Put(ctx, "admin", domain.AppScope, "docs", httpConfig("https://elsewhere.example.com/mcp"))
	rmErr := h.Svc.Remove(ctx, "admin", domain.AppScope, "docs")
	// then both are refused naming the file and the line
	for _, err := range []error{putErr, rmErr} {
		var fe *registry.FileSourcedError
		if !errors.As(err, &fe) || fe.File != "/etc/mcpes.yaml" || fe.Line != 7 {
			t.Fatalf("error = %v, want *FileSourcedError naming /etc/mcpes.yaml line 7", err)
		}
	}

	// when the file is reconciled again without its server
	rep, err := h.Svc.Reconcile(ctx, registry.ConfigFile{Path: "/etc/mcpes.yaml"})
	// then only the file's server is removed; the admin's stays
	if err != nil || !slices.Equal(rep.Removed, []string{"docs"}) {
		t.Fatalf("reconcile = %+v, %v", rep, err)
	}
	if !h.state(domain.AppScope, "extra").Exists {
		t.Fatal("reconcile removed the API server")
	}

	// when the file later names the admin's server, it takes it over
	rep, err = h.Svc.Reconcile(ctx, registry.ConfigFile{Servers: map[string]domain.ServerConfig{"extra": httpConfig("https://extra.example.com/mcp")}})
	if err != nil || !slices.Equal(rep.Changed, []string{"extra"}) || h.state(domain.AppScope, "extra").AppSource() != domain.SourceFile {
		t.Fatalf("take-over = %+v, %v, source %s", rep, err, h.state(domain.AppScope, "extra").AppSource())
	}
}
