package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// t0Timeline is the time of the first event the timeline tests append.
var t0Timeline = time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC)

// appendAt appends facts (one stream) as actor with times at, at+1µs, ...
func appendAt(tb testing.TB, st store.Store, at time.Time, actor string, facts ...any) {
	tb.Helper()
	evs := make([]events.Envelope, len(facts))
	for i, f := range facts {
		e, err := events.New(f, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test",
			Time: at.Add(time.Duration(i) * time.Microsecond), Actor: actor})
		if err != nil {
			tb.Fatal(err)
		}
		evs[i] = e
	}
	if _, err := st.Append(context.Background(), evs[0].Subject, store.AnyVersion, evs...); err != nil {
		tb.Fatal(err)
	}
}

func refusals(owner, server string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = domain.ConnectionRefused{Inputs: domain.DecisionInputs{Owner: owner, Server: server}, Rule: domain.RuleBreakerOpen, Count: 1}
	}
	return out
}

// countingStore counts the events the timeline reads from a real store.
type countingStore struct {
	store.Store
	reads atomic.Int64
}

func (c *countingStore) ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error) {
	evs, err := c.Store.ReadAll(ctx, from, limit)
	c.reads.Add(int64(len(evs)))
	return evs, err
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Envelope, error) {
	evs, err := c.Store.ReadStream(ctx, stream, from, limit)
	c.reads.Add(int64(len(evs)))
	return evs, err
}

func getTimeline(tb testing.TB, s *svc, token string, q url.Values) handlers.Timeline {
	tb.Helper()
	r := s.do("GET", "/v1/audit/timeline?"+q.Encode(), token, nil)
	expect(tb, r, http.StatusOK, "")
	var tl handlers.Timeline
	r.json(tb, &tl)
	return tl
}

func window(from, to time.Time, buckets int) url.Values {
	return url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}, "buckets": {fmt.Sprint(buckets)}}
}

// given a small log spread over a minute
func smallLog(tb testing.TB) *svc {
	s := newSvc(tb)
	appendAt(tb, s.st, t0Timeline, "admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "app-x",
		Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}})
	appendAt(tb, s.st, t0Timeline.Add(10*time.Second), "owner:alice", refusals("alice", "app-x", 2)...)
	appendAt(tb, s.st, t0Timeline.Add(20*time.Second), "owner:bob", refusals("bob", "app-x", 3)...)
	appendAt(tb, s.st, t0Timeline.Add(30*time.Second), "admin", domain.ServerConfigChanged{Scope: domain.AppScope, Name: "app-x",
		Changed: []string{"timeout"}, Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse", TimeoutMS: 5}})
	return s
}

func TestTimeline_SmallLog_EveryEventInItsBucketExactly(t *testing.T) {
	s := smallLog(t)
	// when the admin asks for the minute in 6 buckets of 10 s
	tl := getTimeline(t, s, adminToken, window(t0Timeline, t0Timeline.Add(time.Minute), 6))
	// then every event is listed once, in log order, and counted in its bucket
	if len(tl.Events) != 7 || tl.Truncated {
		t.Fatalf("events %+v", tl.Events)
	}
	for i, e := range tl.Events {
		if e.Position != uint64(i+1) || e.Lane != "app-x" {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	want := []int{1, 2, 3, 1, 0, 0}
	for i, b := range tl.Buckets {
		if b.Count != want[i] || !b.Exact {
			t.Errorf("bucket %d (%s): count %d exact %v, want %d exact", i, b.Start, b.Count, b.Exact, want[i])
		}
	}
	if tl.Buckets[2].Counts["app-x"]["connection.refused"] != 3 || tl.Buckets[3].Counts["app-x"]["server.config_changed"] != 1 {
		t.Errorf("counts %+v / %+v", tl.Buckets[2].Counts, tl.Buckets[3].Counts)
	}
	if len(tl.Lanes) != 1 || tl.Lanes[0] != "app-x" {
		t.Errorf("lanes %v", tl.Lanes)
	}
}

func TestTimeline_Owner_SeesOnlyItsOwnStreams(t *testing.T) {
	s := smallLog(t)
	q := window(t0Timeline, t0Timeline.Add(time.Minute), 6)
	// when alice asks, also pretending to be bob
	q.Set("owner", "bob")
	tl := getTimeline(t, s, aliceToken, q)
	// then she sees her two refusals and nothing of bob's or the app config stream
	if len(tl.Events) != 2 {
		t.Fatalf("alice sees %+v", tl.Events)
	}
	for _, e := range tl.Events {
		if e.Subject != "conn/alice/app-x" {
			t.Errorf("alice sees %+v", e)
		}
	}
	// and the admin looking at alice's view gets the same
	q.Set("owner", "alice")
	if adm := getTimeline(t, s, adminToken, q); len(adm.Events) != 2 || adm.Events[0].Subject != "conn/alice/app-x" {
		t.Errorf("admin for alice: %+v", adm.Events)
	}
}

func TestTimeline_Kind_FiltersFactsAndAreas(t *testing.T) {
	s := smallLog(t)
	for kind, want := range map[string]int{"server.config_changed": 1, "server": 2, "connection": 5, "connection.refused": 5, "connection.opened": 0} {
		q := window(t0Timeline, t0Timeline.Add(time.Minute), 6)
		q.Set("kind", kind)
		if tl := getTimeline(t, s, adminToken, q); len(tl.Events) != want {
			t.Errorf("kind=%s: %d events, want %d", kind, len(tl.Events), want)
		}
	}
}

func TestTimeline_BusyLog_SampledWithinTheReadBudget(t *testing.T) {
	// given 20,000 events of one owner in one second
	cs := &countingStore{Store: memory.New()}
	s := newSvcOn(t, cs, true)
	appendAt(t, cs, t0Timeline, "admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "app-x",
		Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}})
	for i := range 20 {
		appendAt(t, cs, t0Timeline.Add(time.Duration(i)*50*time.Millisecond), "owner:bob", refusals("bob", "app-x", 1000)...)
	}
	cs.reads.Store(0)
	// when the admin asks for that second in 10 buckets
	tl := getTimeline(t, s, adminToken, window(t0Timeline, t0Timeline.Add(time.Second+time.Millisecond), 10))
	// then the answer read at most the budget, and the estimates add up to about the log
	if n := cs.reads.Load(); n > 4096 {
		t.Errorf("read %d events for one answer", n)
	}
	total := 0
	for _, b := range tl.Buckets {
		total += b.Count
		if b.Count > 0 && b.Exact {
			t.Errorf("bucket %s of %d events claims to be exact", b.Start, b.Count)
		}
	}
	if total < 19_000 || total > 21_000 {
		t.Errorf("estimated %d events, want about 20,001", total)
	}
	if len(tl.Events) != 0 {
		t.Errorf("%d single events listed from sampled buckets", len(tl.Events))
	}
}

func TestTimeline_OwnerAmongABusyLog_ReadsItsStreamsExactly(t *testing.T) {
	// given alice's 3 refusals hidden among 20,000 of bob's in the same second
	s := newSvc(t)
	appendAt(t, s.st, t0Timeline, "admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "app-x",
		Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}})
	for i := range 20 {
		appendAt(t, s.st, t0Timeline.Add(time.Duration(i)*50*time.Millisecond), "owner:bob", refusals("bob", "app-x", 1000)...)
		if i == 10 {
			appendAt(t, s.st, t0Timeline.Add(505*time.Millisecond), "owner:alice", refusals("alice", "app-x", 3)...)
		}
	}
	// when alice asks for that second
	tl := getTimeline(t, s, aliceToken, window(t0Timeline, t0Timeline.Add(time.Second+time.Millisecond), 10))
	// then her three events are there, exactly, in the bucket of 500-600 ms
	if len(tl.Events) != 3 || tl.Buckets[5].Count != 3 || !tl.Buckets[5].Exact {
		t.Fatalf("alice's timeline: events %+v, bucket 5 %+v", tl.Events, tl.Buckets[5])
	}
	for i, b := range tl.Buckets {
		if i != 5 && b.Count != 0 {
			t.Errorf("bucket %d counts %d", i, b.Count)
		}
	}
}

func TestTimeline_BadQuery_400(t *testing.T) {
	s := newSvc(t)
	for _, q := range []string{"buckets=0", "buckets=501", "buckets=x", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=yesterday", "kind=connection.*", "kind=" + strings.Repeat("a", 65), "owner=a%20b"} {
		r := s.do("GET", "/v1/audit/timeline?"+q, adminToken, nil)
		expect(t, r, http.StatusBadRequest, handlers.CodeInvalidRequest)
	}
	expect(t, s.do("GET", "/v1/audit/timeline", "", nil), http.StatusUnauthorized, "")
}

func TestIdentity_SaysWhoTheTokenIs(t *testing.T) {
	s := newSvc(t)
	var id handlers.IdentityResponse
	s.do("GET", "/v1/identity", adminToken, nil).json(t, &id)
	if !id.Admin || id.Owner != "" || id.Actor != "admin" {
		t.Errorf("admin: %+v", id)
	}
	s.do("GET", "/v1/identity", aliceToken, nil).json(t, &id)
	if id.Admin || id.Owner != "alice" || id.Actor != "owner:alice" {
		t.Errorf("alice: %+v", id)
	}
	expect(t, s.do("GET", "/v1/identity", "wrong", nil), http.StatusUnauthorized, handlers.CodeUnauthorized)
}

func TestConsole_MountedAtUI(t *testing.T) {
	s := newSvc(t)
	// when /ui is asked for without its slash, the browser is sent to /ui/
	req, _ := http.NewRequest("GET", s.ts.URL+"/ui", nil)
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 3 || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	// and the page needs no token (it asks for one), while the API behind it does
	if r := s.do("GET", "/ui/", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), "token-input") {
		t.Errorf("GET /ui/: %d", r.status)
	}
	expect(t, s.do("GET", "/ui/nope.js", "", nil), http.StatusNotFound, "")
}

func TestTimeline_Subjects_ReadExactlyAndKeepTheOwnerRule(t *testing.T) {
	// given app-x's drift hidden among 20,000 refusals in one second
	s := newSvc(t)
	appendAt(t, s.st, t0Timeline, "admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "app-x",
		Config: domain.ServerConfig{Type: "sse", URL: "http://127.0.0.1:1/sse"}})
	for i := range 20 {
		appendAt(t, s.st, t0Timeline.Add(time.Duration(i)*50*time.Millisecond), "owner:bob", refusals("bob", "app-x", 1000)...)
		if i == 10 {
			appendAt(t, s.st, t0Timeline.Add(505*time.Millisecond), "system",
				domain.ServerToolsChanged{Scope: domain.AppScope, Name: "app-x", PrevDigest: "a", Digest: "b", Added: []string{"t"}})
		}
	}
	q := window(t0Timeline, t0Timeline.Add(time.Second+time.Millisecond), 1)
	q.Set("kind", "server.tools_changed")
	q["subject"] = []string{"server/app/app-x", "server/app/app-y"}
	// when the admin asks for the drift of those config streams
	tl := getTimeline(t, s, adminToken, q)
	// then the one drift event is found, exactly
	if len(tl.Events) != 1 || tl.Events[0].Kind != "server.tools_changed" || !tl.Buckets[0].Exact {
		t.Fatalf("drift: %+v %+v", tl.Events, tl.Buckets)
	}
	// and alice naming bob's stream gets nothing of it
	q = window(t0Timeline, t0Timeline.Add(time.Second+time.Millisecond), 1)
	q["subject"] = []string{"conn/bob/app-x"}
	if tl := getTimeline(t, s, aliceToken, q); len(tl.Events) != 0 || tl.Buckets[0].Count != 0 || !tl.Buckets[0].Exact {
		t.Errorf("alice reads bob's stream: %+v", tl)
	}
	// and a subject that is no stream is refused
	q["subject"] = []string{"tool/x"}
	expect(t, s.do("GET", "/v1/audit/timeline?"+q.Encode(), adminToken, nil), http.StatusBadRequest, handlers.CodeInvalidRequest)
}
