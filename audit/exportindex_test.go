package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

func TestExport_ByOwnerOrServerMatchesAFullScan(t *testing.T) {
	// given 3000 events spread over app and private server streams and connection
	// streams of several owners (some streams far longer than one index page)
	ctx := context.Background()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	owners := []string{"o1", "o10", "o2", domain.SharedOwner}
	for i := range 3000 {
		owner, server := owners[r.IntN(len(owners))], fmt.Sprintf("s%d", r.IntN(4))
		var fact any = domain.ConnectionLost{Owner: owner, Server: server, ConnID: "c", Error: "x"}
		if r.IntN(5) == 0 {
			scope := domain.AppScope
			if owner != domain.SharedOwner {
				scope = domain.UserScope(owner)
			}
			fact = domain.ServerReinspectionRequested{Scope: scope, Name: server}
		}
		env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test",
			Time: t0.Add(time.Duration(i) * time.Second), Actor: "system"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, env.Subject, store.AnyVersion, env); err != nil {
			t.Fatal(err)
		}
	}
	filters := []audit.Filter{
		{Owner: "o1"}, {Owner: domain.SharedOwner}, {Server: "s2"}, {Owner: "o2", Server: "s1"},
		{Owner: "o10", Since: t0.Add(700 * time.Second), Until: t0.Add(2100 * time.Second)},
		{Server: "s0", Types: []string{events.TypeConnectionLost}}, {Owner: "nobody"},
	}
	for _, f := range filters {
		// when it is exported through the index
		var got bytes.Buffer
		n, err := audit.Export(ctx, st, f, &got, nil)
		if err != nil {
			t.Fatal(err)
		}
		// then the lines are exactly those a scan of the whole log selects, in order
		var want bytes.Buffer
		all, err := st.ReadAll(ctx, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		m := 0
		for _, e := range all {
			if f.Match(e) {
				if err := audit.WriteLine(&want, e); err != nil {
					t.Fatal(err)
				}
				m++
			}
		}
		if n != m || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("filter %+v: %d lines through the index, %d by a full scan, or they differ", f, n, m)
		}
		if f.Owner != "nobody" && n == 0 {
			t.Fatalf("filter %+v selects nothing: the test proves little", f)
		}
	}
}

func TestExplain_DecisionsAroundALongConnectionStream(t *testing.T) {
	// given 50 events on o1's connection stream to s1, one a second, with other
	// streams' events between them
	ctx := context.Background()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var positions []uint64
	for i := range 100 {
		server := "s1"
		if i%2 == 1 {
			server = "s2"
		}
		env, err := events.New(domain.ConnectionLost{Owner: "o1", Server: server, ConnID: "c", Error: "x"},
			events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test", Time: t0.Add(time.Duration(i) * time.Second), Actor: "system"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := st.Append(ctx, env.Subject, store.AnyVersion, env)
		if err != nil {
			t.Fatal(err)
		}
		if server == "s1" {
			positions = append(positions, res.Positions[0])
		}
	}
	for _, c := range []struct {
		at             time.Time
		first, earlier int // index in positions of the first decision shown
		before         int
	}{
		{t0.Add(49 * time.Second), 15, 15, 10}, // after s1's 25th event (index 24)
		{t0.Add(48 * time.Second), 15, 15, 10}, // at s1's 25th event
		{t0.Add(-time.Second), 0, 0, 0},        // before anything
		{t0.Add(5 * time.Second), 0, 0, 3},     // after the 3rd
		{t0.Add(time.Hour), 40, 40, 10},        // after the last
	} {
		// when the connection is explained at that time
		ex, err := audit.Explain(ctx, st, "o1", "s1", c.at)
		if err != nil {
			t.Fatal(err)
		}
		// then it shows the last 10 decisions up to then and the next 5, counting
		// the earlier ones it leaves out
		want := min(c.before+audit.DecisionsAfter, len(positions)-c.first)
		if ex.EarlierDecisions != c.earlier || len(ex.Decisions) != want {
			t.Fatalf("at %v: %d decisions, %d earlier; want %d, %d", c.at, len(ex.Decisions), ex.EarlierDecisions, want, c.earlier)
		}
		for i, d := range ex.Decisions {
			if d.Position != positions[c.first+i] || d.After != (i >= c.before) {
				t.Fatalf("at %v: decision %d at %d after=%v, want %d after=%v", c.at, i, d.Position, d.After, positions[c.first+i], i >= c.before)
			}
		}
	}
}

func TestExplain_HistoryShowsTheLastEventsOfBothStreams(t *testing.T) {
	// given 150 config events on the app stream of s1 and o1's private one, mixed
	ctx := context.Background()
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var positions []uint64
	for i := range 150 {
		scope := domain.AppScope
		if i%5 == 0 {
			scope = domain.UserScope("o1")
		}
		env, err := events.New(domain.ServerReinspectionRequested{Scope: scope, Name: "s1"},
			events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test", Time: t0.Add(time.Duration(i) * time.Second), Actor: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := st.Append(ctx, env.Subject, store.AnyVersion, env)
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Positions[0])
	}
	// when o1's s1 is explained after the 140th
	ex, err := audit.Explain(ctx, st, "o1", "s1", t0.Add(139*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// then its history is the last HistoryMax events up to then, oldest first, and
	// counts the 40 before them
	if len(ex.History) != audit.HistoryMax || ex.EarlierHistory != 140-audit.HistoryMax {
		t.Fatalf("history of %d, %d earlier; want %d, %d", len(ex.History), ex.EarlierHistory, audit.HistoryMax, 140-audit.HistoryMax)
	}
	for i, h := range ex.History {
		if h.Position != positions[40+i] {
			t.Fatalf("history %d at %d, want %d", i, h.Position, positions[40+i])
		}
	}
}
