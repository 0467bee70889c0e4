package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store/bolt"
)

func TestRun_WritesALogThatVerifies(t *testing.T) {
	// given a small world: 20 owners, 5 app servers, 16 clients, frequent app changes
	dir := t.TempDir()

	// when the generator runs until the log holds 3,000 events
	if err := run(3000, dir, 20, 5, 16, 50, 4, 7, bulkIndexEvery); err != nil {
		t.Fatal(err)
	}

	// then the log holds them, and verify finds the chain intact and every decision
	// replaying the same
	st, err := bolt.Open(filepath.Join(dir, "mcpes.db"), bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := audit.VerifyAll(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Problems) > 0 {
		t.Fatalf("verify: %+v", rep)
	}
	if rep.Events < 3000 || rep.Decisions == 0 {
		t.Fatalf("want at least 3000 events and some decisions, got %d events, %d decisions", rep.Events, rep.Decisions)
	}
	// and it holds each kind of fact a busy platform writes
	evs, err := st.ReadAll(context.Background(), 1, rep.Events)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range evs {
		seen[e.Type]++
	}
	for _, typ := range []string{events.TypeToolCalled, events.TypeConnectionOpened, events.TypeConnectionRefused,
		events.TypeConnectionEvicted, events.TypeServerConfigChanged, events.TypeServerInspectionFailed} {
		if seen[typ] == 0 {
			t.Errorf("no %s in the log: %v", typ, seen)
		}
	}
}
