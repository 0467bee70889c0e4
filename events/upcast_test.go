package events_test

import (
	"bytes"
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// A log written before scopes were explicit holds mcpes.server.registered.v0 events.
// They must read as v1 registrations in the app scope, and their stored bytes must
// never be rewritten.
func TestUpcast_V0RegistrationReadsAsV1AndStaysStoredAsV0(t *testing.T) {
	ctx := context.Background()
	// given a v0 registration appended to a store as it was written back then
	v0 := events.Envelope{SpecVersion: events.SpecVersion, ID: "0190a0b0-0000-7000-8000-000000000001",
		Source: "mcpes://old", Type: "mcpes.server.registered.v0", Subject: domain.ServerStream(domain.AppScope, "legacy"),
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), DataContentType: "application/json", Actor: "system",
		Data: []byte(`{"name":"legacy","server":{"command":"legacy-mcp","args":["--stdio"]}}`)}
	st := memory.New()
	defer st.Close()
	if _, err := st.Append(ctx, v0.Subject, store.NoStream, v0); err != nil {
		t.Fatal(err)
	}

	// when it is read back and decoded
	var stored []byte
	if err := st.ReadRecords(ctx, 1, func(_ uint64, rec []byte) error { stored = bytes.Clone(rec); return nil }); err != nil {
		t.Fatal(err)
	}
	env, err := events.DecodeRecord(stored)
	if err != nil {
		t.Fatal(err)
	}
	fact, err := events.Decode(env)
	if err != nil {
		t.Fatal(err)
	}

	// then it is the current fact, in the app scope
	want := domain.ServerRegistered{Scope: domain.AppScope, Name: "legacy",
		Config: domain.ServerConfig{Command: "legacy-mcp", Args: []string{"--stdio"}}}
	if !reflect.DeepEqual(fact, want) {
		t.Fatalf("decoded %#v, want %#v", fact, want)
	}
	// and the stored bytes still say v0 (upcasting is a read-time view)
	if env.Type != "mcpes.server.registered.v0" || !bytes.Contains(stored, []byte(`"legacy-mcp"`)) ||
		!bytes.Contains(stored, []byte(`"type":"mcpes.server.registered.v0"`)) {
		t.Errorf("stored record changed: %s", stored)
	}
	// and a projection built from that log knows the server
	p, err := projections.Load(ctx, st, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := p.State(domain.AppScope, "legacy"); !ok || !s.Exists || s.Config.Command != "legacy-mcp" {
		t.Errorf("projection state %+v, %v", s, ok)
	}
}

func TestUpcast_BrokenV0IsAnErrorNotAPanic(t *testing.T) {
	env := events.Envelope{Type: "mcpes.server.registered.v0", Data: []byte(`{"name":""}`)}
	if _, err := events.Decode(env); err == nil {
		t.Fatal("a v0 registration without a name decoded")
	}
}
