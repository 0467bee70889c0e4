package handlers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/events"
)

// Bounds of GET /v1/audit/timeline. The answer reads at most timelineReadBudget events
// whatever the size of the log: bucket edges come from the store's time index, and a
// bucket holding more events than its share of the budget is sampled evenly.
const (
	DefaultTimelineBuckets = 60
	MaxTimelineBuckets     = 500
	timelineReadBudget     = 8192
	timelineMinPerBucket   = 16
	timelineMaxPerBucket   = 256
	// timelineMaxEvents caps the single events listed (those of exact buckets).
	timelineMaxEvents = 2000
)

// Timeline is the body of GET /v1/audit/timeline: the events of [From, To] that the
// caller may see and the filter selects, counted per time bucket, per lane (server
// name) and kind (the event type without "mcpes." and its version).
type Timeline struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Step is the width of a bucket in milliseconds.
	Step    int64            `json:"stepMs"`
	Head    uint64           `json:"head"`
	Lanes   []string         `json:"lanes"`
	Buckets []TimelineBucket `json:"buckets"`
	// Events lists, in log order, the events of the exact buckets (at most 2000).
	Events []TimelineEvent `json:"events"`
	// Truncated says that exact buckets held more events than Events lists.
	Truncated bool `json:"truncated,omitempty"`
}

// TimelineBucket counts the selected events of one time slice. When the slice holds
// more events than the read budget allows, Counts are estimated from an even sample
// of its positions and Exact is false.
type TimelineBucket struct {
	Start  time.Time                 `json:"start"`
	Count  int                       `json:"count"`
	Exact  bool                      `json:"exact"`
	Counts map[string]map[string]int `json:"counts,omitempty"`
}

// TimelineEvent is one event on the timeline.
type TimelineEvent struct {
	Position uint64    `json:"position"`
	Type     string    `json:"type"`
	Kind     string    `json:"kind"`
	Lane     string    `json:"lane"`
	Subject  string    `json:"subject"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// timelineQuery is the parsed query of GET /v1/audit/timeline.
type timelineQuery struct {
	from, to time.Time
	buckets  int
	filter   audit.Filter
}

// parseTimelineQuery reads from, to (RFC 3339 or Unix seconds; default: the first
// event's time and now), buckets, owner (admin only), server and kind (repeatable; an
// area such as "connection" or a fact such as "server.config_changed").
func (a *api) parseTimelineQuery(ctx context.Context, r *http.Request, id Identity) (timelineQuery, error) {
	q := r.URL.Query()
	out := timelineQuery{buckets: DefaultTimelineBuckets, to: a.Clock()}
	if v := q.Get("to"); v != "" {
		t, err := ParseTime(v)
		if err != nil {
			return out, err
		}
		out.to = t
	}
	if v := q.Get("from"); v != "" {
		t, err := ParseTime(v)
		if err != nil {
			return out, err
		}
		out.from = t
	} else {
		first, err := a.Store.ReadAll(ctx, 1, 1)
		if err != nil {
			return out, err
		}
		out.from = out.to.Add(-time.Hour)
		if len(first) == 1 && first[0].Time.Before(out.to) {
			out.from = first[0].Time
		}
	}
	if !out.from.Before(out.to) {
		return out, fmt.Errorf("%w: from must be before to", ErrInvalidRequest)
	}
	if v := q.Get("buckets"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxTimelineBuckets {
			return out, fmt.Errorf("%w: buckets=%q: want 1..%d", ErrInvalidRequest, v, MaxTimelineBuckets)
		}
		out.buckets = n
	}
	owner, err := targetOwner(r, id)
	if err != nil {
		return out, err
	}
	out.filter.Owner = owner
	if id.Admin && q.Get("owner") == "_" {
		out.filter.Owner = "_"
	}
	out.filter.Server = q.Get("server")
	for _, k := range q["kind"] {
		if k == "" || len(k) > 64 || strings.ContainsAny(k, "*/ ") {
			return out, fmt.Errorf("%w: kind=%q: want an area (connection) or a fact (server.config_changed)", ErrInvalidRequest, k)
		}
		out.filter.Types = append(out.filter.Types, "mcpes."+k+".*")
	}
	return out, nil
}

func (a *api) timeline(w http.ResponseWriter, r *http.Request, id Identity) error {
	ctx := r.Context()
	q, err := a.parseTimelineQuery(ctx, r, id)
	if err != nil {
		return err
	}
	tl, err := buildTimeline(ctx, a.Store, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tl)
	return nil
}

// timelineStore is what the timeline reads from the store.
type timelineStore interface {
	Head(ctx context.Context) (uint64, [32]byte, error)
	PositionAt(ctx context.Context, t time.Time) (uint64, error)
	ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error)
}

func buildTimeline(ctx context.Context, st timelineStore, q timelineQuery) (Timeline, error) {
	head, _, err := st.Head(ctx)
	if err != nil {
		return Timeline{}, err
	}
	span := q.to.Sub(q.from)
	step := max(span/time.Duration(q.buckets), time.Millisecond)
	n := int(min(int64(q.buckets), int64((span+step-1)/step)))
	tl := Timeline{From: q.from, To: q.to, Step: step.Milliseconds(), Head: head,
		Lanes: []string{}, Buckets: make([]TimelineBucket, n), Events: []TimelineEvent{}}
	// edges[i] is the last position at or before bucket i's start; bucket i holds the
	// positions (edges[i], edges[i+1]]. The time index keeps a running maximum, so an
	// event whose clock went backwards falls in the bucket of its predecessor.
	edges := make([]uint64, n+1)
	for i := range edges {
		t := q.from.Add(time.Duration(i) * step).Add(-time.Nanosecond)
		if i == n {
			t = q.to
		}
		if edges[i], err = st.PositionAt(ctx, t); err != nil {
			return Timeline{}, err
		}
	}
	perBucket := min(max(timelineReadBudget/n, timelineMinPerBucket), timelineMaxPerBucket)
	lanes := map[string]bool{}
	for i := range n {
		b := &tl.Buckets[i]
		b.Start = q.from.Add(time.Duration(i) * step)
		lo, hi := edges[i], max(edges[i+1], edges[i])
		size := hi - lo
		if size == 0 {
			b.Exact = true
			continue
		}
		var picked []events.Envelope
		if size <= uint64(perBucket) {
			if picked, err = st.ReadAll(ctx, lo+1, int(size)); err != nil {
				return Timeline{}, err
			}
			b.Exact = true
		} else {
			picked = make([]events.Envelope, 0, perBucket)
			for k := range perBucket {
				pos := lo + 1 + (uint64(2*k+1)*size)/uint64(2*perBucket)
				e, err := st.ReadAll(ctx, pos, 1)
				if err != nil {
					return Timeline{}, err
				}
				picked = append(picked, e...)
			}
		}
		for _, e := range picked {
			if !q.filter.Match(e) {
				continue
			}
			lane, kind := laneOf(e.Subject), kindOf(e.Type)
			lanes[lane] = true
			if b.Counts == nil {
				b.Counts = map[string]map[string]int{}
			}
			if b.Counts[lane] == nil {
				b.Counts[lane] = map[string]int{}
			}
			b.Counts[lane][kind]++
			b.Count++
			if !b.Exact {
				continue
			}
			if len(tl.Events) == timelineMaxEvents {
				tl.Truncated = true
				continue
			}
			tl.Events = append(tl.Events, TimelineEvent{Position: uint64(e.Sequence), Type: e.Type,
				Kind: kind, Lane: lane, Subject: e.Subject, Time: e.Time, Actor: e.Actor, Reason: e.Reason})
		}
		if !b.Exact {
			b.Count = scaleCounts(b.Counts, size, len(picked))
		}
	}
	for l := range lanes {
		tl.Lanes = append(tl.Lanes, l)
	}
	slices.Sort(tl.Lanes)
	return tl, nil
}

// scaleCounts turns the counts of a sample of n events into estimates for size
// events (a lane and kind seen at least once keeps at least 1) and returns their sum.
func scaleCounts(counts map[string]map[string]int, size uint64, n int) int {
	total := 0
	for _, kinds := range counts {
		for k, c := range kinds {
			est := max(int((uint64(c)*size+uint64(n)/2)/uint64(n)), 1)
			kinds[k] = est
			total += est
		}
	}
	return total
}

// laneOf is the lane of a stream: the server name, its last path segment.
func laneOf(subject string) string {
	return subject[strings.LastIndexByte(subject, '/')+1:]
}

// kindOf is an event type without "mcpes." and its version: "connection.refused".
func kindOf(typ string) string {
	k := strings.TrimPrefix(typ, "mcpes.")
	if i := strings.LastIndex(k, ".v"); i > 0 {
		k = k[:i]
	}
	return k
}
