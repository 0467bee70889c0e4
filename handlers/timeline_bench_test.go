package handlers_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

var (
	timelineFixture = flag.String("timeline-fixture", "", "keep the BenchmarkTimeline log at this path and reuse it when present")
	timelineEvents  = flag.Int("timeline-events", 1_000_000, "size of the BenchmarkTimeline log")
)

// tlBase is the time of the first generated event; events are 10 ms apart.
var tlBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// buildTimelineLog appends n events without fsync: 20 app servers registered, then
// connection traffic of 200 owners (opened, tool calls, evictions, refusals) with a
// config change now and then, in batches of one stream, times 10 ms apart.
func buildTimelineLog(tb testing.TB, path string, n int) {
	tb.Helper()
	ctx := context.Background()
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	pos := 0
	emit := func(facts ...any) {
		evs := make([]events.Envelope, len(facts))
		for i, f := range facts {
			pos++
			e, err := events.New(f, events.Meta{ID: fmt.Sprintf("01900000-0000-7000-8000-%012x", pos), Source: "mcpes://bench",
				Time: tlBase.Add(time.Duration(pos) * 10 * time.Millisecond), Actor: "system"})
			if err != nil {
				tb.Fatal(err)
			}
			evs[i] = e
		}
		if _, err := st.Append(ctx, evs[0].Subject, store.AnyVersion, evs...); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := func(i int) domain.ServerConfig {
		return domain.ServerConfig{Type: "streamable-http", URL: fmt.Sprintf("https://s%d.example.com/mcp", i), TimeoutMS: int64(1000 + i)}
	}
	for i := range 20 {
		emit(domain.ServerRegistered{Scope: domain.AppScope, Name: fmt.Sprintf("app-%02d", i), Config: cfg(i)})
	}
	for k := 0; pos < n; k++ {
		owner, server := fmt.Sprintf("user-%03d", k%200), fmt.Sprintf("app-%02d", k%20)
		if k%500 == 0 {
			emit(domain.ServerConfigChanged{Scope: domain.AppScope, Name: server, Changed: []string{"timeout"}, Config: cfg(k)})
			continue
		}
		in := domain.DecisionInputs{Owner: owner, Server: server, Position: uint64(pos),
			Config: domain.ConfigView{Found: true, Scope: domain.AppScope, Version: 1, Startup: true}}
		facts := []any{domain.ConnectionOpened{Inputs: in, ConnID: fmt.Sprint("c", k), ProtocolVersion: "2025-11-25", DurationMS: 2}}
		for range min(n-pos-1, 60) {
			facts = append(facts, domain.ConnectionRefused{Inputs: in, Rule: domain.RuleBreakerOpen, Count: 1})
		}
		emit(facts...)
	}
}

// BenchmarkTimeline times GET /v1/audit/timeline on a 1,000,000-event bbolt log
// (target ≤ 200 ms a query): the whole log, a zoomed-in window, one owner's and one
// server's view. It reports ms/query and the median of the run as p50_ms.
func BenchmarkTimeline(b *testing.B) {
	path := *timelineFixture
	if path == "" {
		path = filepath.Join(b.TempDir(), "timeline.db")
	}
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		buildTimelineLog(b, path, *timelineEvents)
		b.Logf("fixture: %d events in %s", *timelineEvents, time.Since(start).Round(time.Millisecond))
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s := newSvcOn(b, st, true)
	end := tlBase.Add(time.Duration(*timelineEvents) * 10 * time.Millisecond)
	mid := tlBase.Add(end.Sub(tlBase) / 2)
	for _, tc := range []struct{ name, query string }{
		{"whole_log_60", fmt.Sprintf("from=%s&to=%s", tlBase.Format(time.RFC3339), end.Format(time.RFC3339))},
		{"whole_log_500", fmt.Sprintf("from=%s&to=%s&buckets=500", tlBase.Format(time.RFC3339), end.Format(time.RFC3339))},
		{"zoom_1min", fmt.Sprintf("from=%s&to=%s", mid.Format(time.RFC3339), mid.Add(time.Minute).Format(time.RFC3339))},
		{"owner", fmt.Sprintf("owner=user-007&from=%s&to=%s", tlBase.Format(time.RFC3339), end.Format(time.RFC3339))},
		{"server_kind", fmt.Sprintf("server=app-03&kind=server.config_changed&from=%s&to=%s", tlBase.Format(time.RFC3339), end.Format(time.RFC3339))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				var tl struct {
					Buckets []json.RawMessage `json:"buckets"`
				}
				r := s.do("GET", "/v1/audit/timeline?"+tc.query, adminToken, nil)
				took = append(took, time.Since(t0))
				expect(b, r, http.StatusOK, "")
				if r.json(b, &tl); len(tl.Buckets) == 0 {
					b.Fatalf("no buckets: %s", r.body)
				}
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/query")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
