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
	"github.com/mcpes/mcpes/domain"
)

// Bounds of GET /v1/audit/timeline. One answer reads about timelineReadBudget events
// whatever the size of the log (plus a binary search of the stream index per stream
// of an owner's view): bucket edges come from the store's time index, and a bucket or
// stream holding more events than its share of the budget is sampled evenly.
const (
	DefaultTimelineBuckets = 60
	MaxTimelineBuckets     = 500
	timelineReadBudget     = 4096
	timelineMinPerBucket   = 8
	timelineMaxPerBucket   = 256
	// maxTimelineSpan bounds to-from, far from time.Duration's overflow.
	maxTimelineSpan = 100 * 366 * 24 * time.Hour
	// maxTimelineSubjects bounds the subject= streams of one query.
	maxTimelineSubjects = 500
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
	// Events lists, in log order, the events of the exact buckets (the newest 2000).
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
	// streams, when not nil, are the only streams read (subject= or an owner's view);
	// nil reads the whole log.
	streams []string
}

// parseTimelineQuery reads from, to (RFC 3339 or Unix seconds; default: the first
// event's time and now), buckets, owner (admin only), server, kind (repeatable; an
// area such as "connection" or a fact such as "server.config_changed") and subject
// (repeatable: read only these streams).
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
	if out.from.Year() < 1 || out.to.Year() > 9999 {
		return out, fmt.Errorf("%w: from and to must be within the years 1 to 9999", ErrInvalidRequest)
	}
	if out.to.Sub(out.from) > maxTimelineSpan {
		return out, fmt.Errorf("%w: from and to are more than 100 years apart", ErrInvalidRequest)
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
	// subject names streams to read one by one (exactly, through the stream index);
	// the owner rule still applies to what they hold.
	if subjects := q["subject"]; len(subjects) > 0 {
		if len(subjects) > maxTimelineSubjects {
			return out, fmt.Errorf("%w: at most %d subject= streams", ErrInvalidRequest, maxTimelineSubjects)
		}
		for _, subj := range subjects {
			if !strings.HasPrefix(subj, "server/") && !strings.HasPrefix(subj, "conn/") && !strings.HasPrefix(subj, "owner/") || len(subj) > 512 {
				return out, fmt.Errorf("%w: subject=%q: want a stream, server/<scope>/<name>, conn/<owner>/<server> or owner/<owner>/…", ErrInvalidRequest, subj)
			}
		}
		out.streams = slices.Compact(slices.Sorted(slices.Values(subjects)))
	}
	return out, nil
}

func (a *api) timeline(w http.ResponseWriter, r *http.Request, id Identity) error {
	ctx := r.Context()
	q, err := a.parseTimelineQuery(ctx, r, id)
	if err != nil {
		return err
	}
	if q.streams == nil && q.filter.Owner != "" {
		q.streams = a.ownerStreams(q.filter.Owner, q.filter.Server)
	}
	if !id.Admin {
		// Another owner's stream is not even read: its size must not show.
		q.streams = slices.DeleteFunc(q.streams, func(s string) bool { return !audit.OwnsSubject(id.Owner, s) })
	}
	tl, err := buildTimeline(ctx, a.Store, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tl)
	return nil
}

// ownerStreams lists the streams of owner's view, read one by one through the store's
// stream index: its connection and grant streams of every server it sees and the
// config stream of each of its private servers. Servers removed before now are not listed.
func (a *api) ownerStreams(owner, server string) []string {
	repo := owner
	if owner == domain.SharedOwner {
		repo = ""
	}
	out := []string{} // not nil: an owner without servers reads nothing, not the log
	for _, e := range a.Servers.List(repo) {
		if server != "" && e.Name != server {
			continue
		}
		out = append(out, domain.ConnStream(repo, e.Name))
		if repo != "" {
			out = append(out, domain.GrantStream(repo, e.Name))
		}
		if !e.Scope.IsApp() {
			out = append(out, domain.ServerStream(e.Scope, e.Name))
		}
	}
	return out
}
