package handlers

// The timeline's reading and counting: bucket edges from the time index, then either
// the whole log bucket by bucket or the listed streams one by one, each in full or as
// an even, weighted sample.

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mcpes/mcpes/events"
)

// timelineStore is what the timeline reads from the store.
type timelineStore interface {
	Head(ctx context.Context) (uint64, [32]byte, error)
	PositionAt(ctx context.Context, t time.Time) (uint64, error)
	ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error)
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Envelope, error)
	StreamVersion(ctx context.Context, stream string) (uint64, error)
}

// timelineBuilder accumulates weighted counts per bucket: an event read in full
// weighs 1, a sampled one the number of events it stands for.
type timelineBuilder struct {
	q      timelineQuery
	tl     Timeline
	edges  []uint64
	counts []map[string]map[string]float64
	lanes  map[string]bool
}

func buildTimeline(ctx context.Context, st timelineStore, q timelineQuery) (Timeline, error) {
	head, _, err := st.Head(ctx)
	if err != nil {
		return Timeline{}, err
	}
	span := q.to.Sub(q.from)
	step := max(span/time.Duration(q.buckets), time.Millisecond)
	n := int(min(int64(q.buckets), int64((span+step-1)/step)))
	b := &timelineBuilder{q: q, edges: make([]uint64, n+1), counts: make([]map[string]map[string]float64, n), lanes: map[string]bool{},
		tl: Timeline{From: q.from, To: q.to, Step: step.Milliseconds(), Head: head,
			Lanes: []string{}, Buckets: make([]TimelineBucket, n), Events: []TimelineEvent{}}}
	// edges[i] is the last position at or before bucket i's start; bucket i holds the
	// positions (edges[i], edges[i+1]]. The time index keeps a running maximum, so an
	// event whose clock went backwards falls in the bucket of its predecessor.
	for i := range b.edges {
		t := q.from.Add(time.Duration(i) * step).Add(-time.Nanosecond)
		if i == n {
			t = q.to
		}
		if b.edges[i], err = st.PositionAt(ctx, t); err != nil {
			return Timeline{}, err
		}
		if i > 0 {
			b.edges[i] = max(b.edges[i], b.edges[i-1])
		}
	}
	for i := range n {
		b.tl.Buckets[i] = TimelineBucket{Start: q.from.Add(time.Duration(i) * step), Exact: true}
	}
	if q.streams != nil {
		err = b.readStreams(ctx, st)
	} else {
		err = b.readLog(ctx, st)
	}
	if err != nil {
		return Timeline{}, err
	}
	return b.finish(), nil
}

// readLog reads every bucket of the whole log: in full when it holds at most its
// share of the read budget, else an even sample of its positions.
func (b *timelineBuilder) readLog(ctx context.Context, st timelineStore) error {
	n := len(b.tl.Buckets)
	per := uint64(min(max(timelineReadBudget/n, timelineMinPerBucket), timelineMaxPerBucket))
	for i := range n {
		lo, hi := b.edges[i], b.edges[i+1]
		size := hi - lo
		switch {
		case size == 0:
		case size <= per:
			evs, err := st.ReadAll(ctx, lo+1, int(size))
			if err != nil {
				return err
			}
			for _, e := range evs {
				b.add(i, e, 1)
			}
		default:
			weight := float64(size) / float64(per)
			for k := range per {
				evs, err := st.ReadAll(ctx, lo+1+(2*k+1)*size/(2*per), 1)
				if err != nil {
					return err
				}
				for _, e := range evs {
					b.add(i, e, weight)
				}
			}
		}
	}
	return nil
}

// readStreams reads the window of each listed stream through the stream index: in
// full when it fits the stream's share of the read budget, else an even sample of its
// versions. A rare stream is thus read exactly however busy the rest of the log is.
func (b *timelineBuilder) readStreams(ctx context.Context, st timelineStore) error {
	if len(b.q.streams) == 0 {
		return nil
	}
	per := uint64(max(timelineReadBudget/len(b.q.streams), timelineMinPerBucket))
	lo, hi := b.edges[0], b.edges[len(b.edges)-1]
	for _, stream := range b.q.streams {
		v, err := st.StreamVersion(ctx, stream)
		if err != nil {
			return err
		}
		posOf := func(ver uint64) (uint64, error) {
			evs, err := st.ReadStream(ctx, stream, ver, 1)
			if err != nil || len(evs) == 0 {
				return 0, err
			}
			return uint64(evs[0].Sequence), nil
		}
		// first is the first version after lo, last+1 the first after hi.
		first, err := searchVersion(v, lo, posOf)
		if err != nil {
			return err
		}
		end, err := searchVersion(v, hi, posOf)
		if err != nil {
			return err
		}
		count := end - first
		if count == 0 {
			continue
		}
		if count <= per {
			evs, err := st.ReadStream(ctx, stream, first, int(count))
			if err != nil {
				return err
			}
			for _, e := range evs {
				b.addAt(e, 1)
			}
			continue
		}
		// Every bucket the stream's window spans is an estimate now.
		from, err := posOf(first)
		if err != nil {
			return err
		}
		to, err := posOf(end - 1)
		if err != nil {
			return err
		}
		for i := max(b.bucketOf(from), 0); i < len(b.tl.Buckets) && b.edges[i] < to; i++ {
			b.tl.Buckets[i].Exact = false
		}
		weight := float64(count) / float64(per)
		for k := range per {
			evs, err := st.ReadStream(ctx, stream, first+(2*k+1)*count/(2*per), 1)
			if err != nil {
				return err
			}
			for _, e := range evs {
				b.addAt(e, weight)
			}
		}
	}
	return nil
}

// searchVersion returns the first stream version (1..v) whose position is after pos,
// or v+1 when there is none, by binary search over the stream index.
func searchVersion(v, pos uint64, posOf func(uint64) (uint64, error)) (uint64, error) {
	lo, hi := uint64(1), v+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		p, err := posOf(mid)
		if err != nil {
			return 0, err
		}
		if p > pos {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// addAt adds e to the bucket that holds its position.
func (b *timelineBuilder) addAt(e events.Envelope, weight float64) {
	if i := b.bucketOf(uint64(e.Sequence)); i >= 0 {
		b.add(i, e, weight)
	}
}

// add counts e in bucket i when the filter selects it; weight 1 means e was read as
// part of a full read, and it is then listed too.
func (b *timelineBuilder) add(i int, e events.Envelope, weight float64) {
	if weight != 1 {
		b.tl.Buckets[i].Exact = false
	}
	if !b.q.filter.Match(e) {
		return
	}
	lane, kind := laneOf(e.Subject), kindOf(e.Type)
	b.lanes[lane] = true
	if b.counts[i] == nil {
		b.counts[i] = map[string]map[string]float64{}
	}
	if b.counts[i][lane] == nil {
		b.counts[i][lane] = map[string]float64{}
	}
	b.counts[i][lane][kind] += weight
	if weight == 1 {
		b.tl.Events = append(b.tl.Events, TimelineEvent{Position: uint64(e.Sequence), Type: e.Type,
			Kind: kind, Lane: lane, Subject: e.Subject, Time: e.Time, Actor: e.Actor, Reason: e.Reason})
	}
}

// finish rounds the counts (a lane and kind seen at all keeps at least 1), lists the
// lanes, and keeps the newest timelineMaxEvents events of exact buckets in log order.
func (b *timelineBuilder) finish() Timeline {
	tl := b.tl
	for i, lanes := range b.counts {
		if lanes == nil {
			continue
		}
		bk := &tl.Buckets[i]
		bk.Counts = map[string]map[string]int{}
		for lane, kinds := range lanes {
			bk.Counts[lane] = map[string]int{}
			for k, c := range kinds {
				n := max(int(c+0.5), 1)
				bk.Counts[lane][k] = n
				bk.Count += n
			}
		}
	}
	evs := tl.Events[:0]
	for _, e := range tl.Events {
		if i := b.bucketOf(e.Position); i >= 0 && tl.Buckets[i].Exact {
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(x, y TimelineEvent) int { return cmp.Compare(x.Position, y.Position) })
	if len(evs) > timelineMaxEvents {
		evs, tl.Truncated = evs[len(evs)-timelineMaxEvents:], true
	}
	tl.Events = evs
	for l := range b.lanes {
		tl.Lanes = append(tl.Lanes, l)
	}
	slices.Sort(tl.Lanes)
	return tl
}

func (b *timelineBuilder) bucketOf(pos uint64) int {
	n := len(b.tl.Buckets)
	i := sort.Search(n, func(i int) bool { return b.edges[i+1] >= pos })
	if i < n && pos > b.edges[i] {
		return i
	}
	return -1
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
