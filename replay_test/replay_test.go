// Package replaytest replays recorded event logs (testdata/<scenario>.jsonl) into the
// memory and bbolt stores, rebuilds the projections, and compares them with golden
// files; every recorded connection decision is re-derived with domain.DecideGet from
// the projection as of the position it read.
//
//	go test ./replay_test -regen    # re-record the scenarios (deterministic)
//	go test ./replay_test -update   # rewrite the golden projections
package replaytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
	"github.com/mcpes/mcpes/store/memory"
)

var (
	regen  = flag.Bool("regen", false, "re-record testdata/<scenario>.jsonl from the scenario code")
	update = flag.Bool("update", false, "rewrite testdata/<scenario>.golden.json")
)

func fixturePath(name string) string { return filepath.Join("testdata", name+".jsonl") }
func goldenPath(name string) string  { return filepath.Join("testdata", name+".golden.json") }

// TestFixtures_MatchTheirScenarios re-records every scenario and compares it with the
// committed log, so a fixture never silently drifts from the code that describes it.
func TestFixtures_MatchTheirScenarios(t *testing.T) {
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			b := newBuilder(t, i+1)
			sc.record(b)
			got := b.jsonl()
			if *regen {
				if err := os.WriteFile(fixturePath(sc.name), got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(fixturePath(sc.name))
			if err != nil {
				t.Fatalf("%v (run with -regen to record it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s differs from its scenario; run go test ./replay_test -regen -update if the change is intended", fixturePath(sc.name))
			}
		})
	}
}

func TestReplay_Scenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			recorded := readFixture(t, fixturePath(sc.name))
			if len(recorded) < 8 {
				t.Fatalf("fixture has only %d events", len(recorded))
			}
			for _, kind := range []string{"memory", "bolt"} {
				t.Run(kind, func(t *testing.T) {
					// given the recorded log appended to a fresh store
					st := openStore(t, kind)
					appendRecorded(t, st, recorded)

					// when the projections are rebuilt (one pass, and loaded as at startup)
					got := snapshotOf(t, st, sc.owners)

					// then they match the golden file, and every decision re-derives
					compareGolden(t, goldenPath(sc.name), got)
					checkDecisions(t, st, recorded)
				})
			}
		})
	}
}

func readFixture(tb testing.TB, path string) []events.Envelope {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("%v (run with -regen to record it)", err)
	}
	defer f.Close()
	var out []events.Envelope
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<24)
	for sc.Scan() {
		var e events.Envelope
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func openStore(tb testing.TB, kind string) store.Store {
	tb.Helper()
	var st store.Store
	switch kind {
	case "memory":
		st = memory.New()
	case "bolt":
		s, err := bolt.Open(filepath.Join(tb.TempDir(), "events.db"), bolt.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		st = s
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// appendRecorded appends the recorded envelopes in order and checks the store seals
// each to exactly the recorded position and hash: the fixture is a faithful log.
func appendRecorded(tb testing.TB, st store.Store, recorded []events.Envelope) {
	tb.Helper()
	ctx := context.Background()
	for i, e := range recorded {
		in := e
		in.Sequence, in.StreamVersion, in.PrevHash, in.Hash = 0, 0, "", ""
		res, err := st.Append(ctx, in.Subject, store.AnyVersion, in)
		if err != nil {
			tb.Fatalf("append %d: %v", i+1, err)
		}
		if res.Positions[0] != uint64(e.Sequence) {
			tb.Fatalf("event %s stored at %d, recorded at %d", e.ID, res.Positions[0], e.Sequence)
		}
	}
	stored, err := st.ReadAll(ctx, 1, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if len(stored) != len(recorded) {
		tb.Fatalf("stored %d events, recorded %d", len(stored), len(recorded))
	}
	for i := range stored {
		if stored[i].Hash != recorded[i].Hash || stored[i].StreamVersion != recorded[i].StreamVersion {
			tb.Fatalf("position %d: stored hash %s v%d, recorded %s v%d", i+1, stored[i].Hash, stored[i].StreamVersion,
				recorded[i].Hash, recorded[i].StreamVersion)
		}
	}
}

// golden is what a scenario's projections look like after replay.
type golden struct {
	Position    uint64                         `json:"position"`
	Servers     []domain.ServerState           `json:"servers"`
	Lists       map[string][]projections.Entry `json:"lists"`
	Connections []projections.ConnInfo         `json:"connections"`
}

func snapshotOf(tb testing.TB, st store.Store, owners []string) golden {
	tb.Helper()
	ctx := context.Background()
	s, c, err := projections.Rebuild(ctx, st, 0)
	if err != nil {
		tb.Fatal(err)
	}
	g := golden{Position: s.Position(), Servers: s.States(), Lists: map[string][]projections.Entry{}, Connections: c.All()}
	for _, o := range owners {
		key := o
		if o == "" {
			key = domain.SharedOwner
		}
		g.Lists[key] = s.List(o)
	}
	// A startup-style load (observer + tail) must agree with the one-pass rebuild.
	loaded, err := projections.Load(ctx, st, projections.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	a, _ := json.Marshal(loaded.States())
	b, _ := json.Marshal(g.Servers)
	if !bytes.Equal(a, b) || loaded.Position() != g.Position {
		tb.Fatalf("Load and Rebuild disagree:\n%s\n%s", a, b)
	}
	lc, err := projections.LoadConnections(ctx, st, projections.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	a, _ = json.Marshal(lc.All())
	b, _ = json.Marshal(g.Connections)
	if !bytes.Equal(a, b) {
		tb.Fatalf("LoadConnections and Rebuild disagree:\n%s\n%s", a, b)
	}
	return g
}

func compareGolden(tb testing.TB, path string, got golden) {
	tb.Helper()
	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	out = append(out, '\n')
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(out, want) {
		tb.Fatalf("projection differs from %s (run with -update if intended):\n%s", path, out)
	}
}

// checkDecisions re-derives every recorded Get decision: the projection as of the
// decision's position must give the recorded config view, and domain.DecideGet on the
// recorded inputs must give the recorded action, rule and eviction.
func checkDecisions(tb testing.TB, st store.Store, recorded []events.Envelope) {
	tb.Helper()
	problems, checked, err := decisionProblems(context.Background(), st, recorded)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range problems {
		tb.Error(p)
	}
	if checked == 0 {
		tb.Fatal("no decisions in the fixture")
	}
}

func decisionProblems(ctx context.Context, st store.Store, recorded []events.Envelope) (problems []string, checked int, err error) {
	for _, e := range recorded {
		fact, err := events.Decode(e)
		if err != nil {
			return nil, 0, fmt.Errorf("decode %d: %w", e.Sequence, err)
		}
		var in domain.DecisionInputs
		var check func(d domain.Decision) bool
		switch f := fact.(type) {
		case domain.ConnectionOpened:
			in = f.Inputs
			check = func(d domain.Decision) bool { return d.Action == domain.ActionConnect && d.Evict == f.Replaced }
		case domain.ConnectionOpenFailed:
			in = f.Inputs
			check = func(d domain.Decision) bool { return d.Action == domain.ActionConnect }
		case domain.ConnectionRefused:
			in = f.Inputs
			check = func(d domain.Decision) bool { return d.Action == domain.ActionRefuse && d.Rule == f.Rule }
		case domain.ConnectionEvicted:
			in = f.Inputs
			switch f.Reason {
			case domain.EvictStale, domain.EvictDisallowed, domain.EvictRemoved, domain.EvictDead:
				check = func(d domain.Decision) bool { return d.Evict == f.Reason && d.Rule == f.Rule }
			default: // idle, explicit, shutdown: not a policy decision; the inputs must still hold
				check = func(domain.Decision) bool { return true }
			}
		default:
			continue
		}
		past, err := projections.AsOf(ctx, st, in.Position)
		if err != nil {
			return nil, 0, err
		}
		_, view, pos := past.Effective(in.Owner, in.Server)
		if view != in.Config || pos != in.Position {
			problems = append(problems, fmt.Sprintf("event %d (%s): projection as of %d says %+v, the decision read %+v",
				e.Sequence, e.Type, in.Position, view, in.Config))
		}
		if d := domain.DecideGet(in); !check(d) {
			problems = append(problems, fmt.Sprintf("event %d (%s): DecideGet gives %+v, which does not match the record", e.Sequence, e.Type, d))
		}
		checked++
	}
	return problems, checked, nil
}

func TestDecisionCheck_DetectsAMismatch(t *testing.T) {
	// given the startup log, stored faithfully
	recorded := readFixture(t, fixturePath("startup_server_down"))
	st := openStore(t, "memory")
	appendRecorded(t, st, recorded)
	tampered := map[string]func(map[string]any){
		"rule": func(d map[string]any) { d["rule"] = string(domain.RuleStartupDisabled) },
		"config": func(d map[string]any) {
			d["inputs"].(map[string]any)["config"].(map[string]any)["inspectionFailed"] = false
		},
	}
	for name, change := range tampered {
		t.Run(name, func(t *testing.T) {
			// when one recorded refusal is changed
			evs := slices.Clone(recorded)
			i := slices.IndexFunc(evs, func(e events.Envelope) bool { return e.Type == events.TypeConnectionRefused })
			var data map[string]any
			if err := json.Unmarshal(evs[i].Data, &data); err != nil {
				t.Fatal(err)
			}
			change(data)
			evs[i].Data, _ = json.Marshal(data)
			// then the check reports it
			problems, _, err := decisionProblems(context.Background(), st, evs)
			if err != nil || len(problems) == 0 {
				t.Fatalf("tampered decision not detected (err %v)", err)
			}
		})
	}
}
