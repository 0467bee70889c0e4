package connections

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// Replayer re-runs the recorded connection decisions of records fed to it in log
// order (see ReplayDecisions for what it compares). It reads each record's type with
// the envelope scanner and decodes only the events replay needs: connection
// decisions and losses, server and owner events (folded into the config projection)
// and completed OAuth grants. Tool calls and the other audit facts, most of a busy
// log, are skipped after their type. Scanning and decoding run on the goroutine that
// calls Record; the checks run in order on a goroutine of the Replayer's own, so the
// two overlap on a multi-core machine.
//
// A decision read the config projection at a position a little before its own, and
// events of other requests may come between. So the projection trails the records
// by up to window positions: server and owner events wait in a queue, decisions wait
// in a heap ordered by the position they read, and each decision's view is compared
// once the projection has folded exactly the events up to that position. Memory holds
// the projection, the open connections, the grants and what the window holds, not
// the log. A decision that read further back than the window (none in a healthy
// log) is compared in a second pass over the log in Finish.
type Replayer struct {
	upTo, last uint64
	rep        ReplayReport
	err        error
	progress   func(done, total uint64)

	batch *batch
	full  chan *batch
	free  chan *batch
	done  chan struct{}

	// The checking goroutine's state.
	proj *projections.Servers
	// folded is the position the projection is as of: it holds every server and
	// owner event up to it, and queue those after it.
	folded  uint64
	ticked  uint64
	queue   []events.Envelope
	pending viewHeap
	late    []laterView
	chk     *checker
	viewFn  func(pos uint64, typ string, in domain.DecisionInputs) (domain.ConfigView, bool)
}

// window is how many positions the projection trails the records by; every
// window/64 positions it catches up to that distance. A variable so that tests can
// make a decision fall behind it.
var window uint64 = 1 << 14

// batchSize is how many prepared records are handed to the checking goroutine at once.
const batchSize = 256

// prepared is a record replay needs, scanned and decoded.
type prepared struct {
	// e is the envelope without its data, except for server and owner events (folded
	// into the projection later) whose data is a copy.
	e events.Envelope
	// fact is the decoded connection event or grant (nil for server and owner events).
	fact any
}

type batch struct{ items []prepared }

// NewReplayer returns a Replayer for the log up to position upTo (records beyond it
// are ignored). progress, when not nil, is called now and then (on the goroutine
// calling Record, and in Finish) with the position reached and upTo. Call Finish, or
// Close, when done.
func NewReplayer(upTo uint64, progress func(done, total uint64)) *Replayer {
	r := &Replayer{upTo: upTo, proj: projections.NewServers(), progress: progress}
	r.chk = newChecker(&r.rep)
	r.viewFn = r.view // one method value, not one per decision
	return r
}

// errOutOfOrder is the Replayer's error for a record that does not follow the last.
var errOutOfOrder = errors.New("record out of order")

// Record feeds the record at pos (its canonical envelope bytes, read only during the
// call). Records must come in order from position 1 without gaps. After the first
// error (an event replay needs does not decode, or a gap) the rest is ignored and
// Finish returns the error.
func (r *Replayer) Record(pos uint64, canonical []byte) {
	if r.err != nil || pos > r.upTo {
		return
	}
	if pos != r.last+1 {
		r.err = fmt.Errorf("position %d after %d: %w", pos, r.last, errOutOfOrder)
		return
	}
	r.last = pos
	r.rep.Events++
	if r.progress != nil && pos%replayPage == 0 {
		r.progress(pos, r.upTo)
	}
	p, ok, err := prepare(pos, canonical, true)
	if err != nil {
		r.err = fmt.Errorf("position %d: %w", pos, err)
		return
	}
	if !ok {
		return
	}
	if r.batch == nil {
		r.start()
	}
	r.batch.items = append(r.batch.items, p)
	if len(r.batch.items) == batchSize {
		r.full <- r.batch
		r.batch = <-r.free
	}
}

// start runs the checking goroutine.
func (r *Replayer) start() {
	r.full, r.free, r.done = make(chan *batch, 4), make(chan *batch, 6), make(chan struct{})
	for range cap(r.free) {
		r.free <- &batch{}
	}
	r.batch = <-r.free
	go func() {
		defer close(r.done)
		for b := range r.full {
			for i := range b.items {
				r.apply(b.items[i])
				b.items[i] = prepared{}
			}
			b.items = b.items[:0]
			r.free <- b
		}
	}()
}

// Close stops the checking goroutine once it has checked what was fed. Finish calls
// it; call it directly when the report is not wanted. Close is idempotent.
func (r *Replayer) Close() {
	if r.batch == nil {
		return
	}
	if len(r.batch.items) > 0 {
		r.full <- r.batch
	}
	r.batch = nil
	close(r.full)
	<-r.done
}

// needed reports whether replay reads events of type typ: those the projection folds
// and, when it checks decisions, the connection events and grants.
func needed(typ string, check bool) bool {
	switch events.Area(typ) {
	case "server", "owner":
		return true
	case "connection":
		return check
	}
	return check && typ == events.TypeOAuthCompleted
}

// prepare scans one record and, if replay needs its type, decodes it. ok is false
// for a record replay does not need.
func prepare(pos uint64, canonical []byte, check bool) (p prepared, ok bool, err error) {
	e := events.Envelope{Sequence: events.Sequence(pos)}
	var timeRaw []byte
	skip := false
	err = events.EachEnvelopeField(canonical, func(key, val []byte) bool {
		switch string(key) {
		case "type":
			e.Type = events.InternType(events.Unquote(val))
			if !needed(e.Type, check) {
				skip = true
				return false
			}
		case "subject":
			e.Subject = string(events.Unquote(val))
		case "time":
			timeRaw = events.Unquote(val)
		case "reason":
			e.Reason = string(events.Unquote(val))
		case "data":
			e.Data = val
		}
		return true
	})
	if err != nil || skip {
		return p, false, err
	}
	switch events.Area(e.Type) {
	case "server", "owner":
		if e.Time, err = time.Parse(time.RFC3339Nano, string(timeRaw)); err != nil {
			return p, false, fmt.Errorf("%w: time %q", events.ErrCorrupt, timeRaw)
		}
		e.Data = bytes.Clone(e.Data) // the record is read only during the call
		return prepared{e: e}, true, nil
	}
	fact, err := events.Decode(e)
	if err != nil {
		return p, false, err
	}
	e.Data = nil
	return prepared{e: e, fact: fact}, true, nil
}

// apply checks a prepared decision, or queues a server or owner event for the
// projection, or notes a grant; every window/64 positions it moves the projection
// up to window positions behind.
func (r *Replayer) apply(p prepared) {
	pos := uint64(p.e.Sequence)
	switch f := p.fact.(type) {
	case nil:
		r.queue = append(r.queue, p.e)
	case domain.OAuthCompleted:
		r.chk.grants[f.Owner+"\x00"+f.Server+"\x00"+f.GrantID] = true
	default:
		r.chk.check(p.e, p.fact, r.viewFn)
	}
	if tick := pos / max(window/64, 1); tick > r.ticked {
		r.ticked = tick
		if pos > window {
			r.advance(pos - window)
		}
	}
}

// view defers the comparison of a decision's config view until the projection is as
// of the position the decision read (advance), or to Finish's second pass when the
// projection is past it already.
func (r *Replayer) view(pos uint64, typ string, in domain.DecisionInputs) (domain.ConfigView, bool) {
	l := laterView{pos: pos, typ: typ, in: in}
	if in.Position < r.folded {
		r.late = append(r.late, l)
	} else {
		r.pending.push(l)
	}
	return domain.ConfigView{}, false
}

// advance compares the waiting decisions that read at or before limit, each at its
// position, and brings the projection to limit.
func (r *Replayer) advance(limit uint64) {
	for r.pending.len() > 0 && r.pending.next() <= limit {
		l := r.pending.pop()
		r.foldTo(l.in.Position)
		if _, v, _ := r.proj.Effective(l.in.Owner, l.in.Server); v != l.in.Config {
			r.chk.miss(l.pos, l.typ, l.in, "config "+viewString(l.in.Config), "config "+viewString(v))
		}
	}
	r.foldTo(limit)
}

// foldTo folds the queued events up to pos into the projection.
func (r *Replayer) foldTo(pos uint64) {
	if pos <= r.folded {
		return
	}
	n := 0
	for ; n < len(r.queue) && uint64(r.queue[n].Sequence) <= pos; n++ {
		// the events between the queued ones changed nothing the projection holds
		// (replay read their types)
		r.proj.ApplySparse(r.queue[n : n+1])
		r.queue[n] = events.Envelope{}
	}
	r.queue = r.queue[n:]
	r.folded = pos
}

// waiting is a decision whose view waits for the projection to reach read; slot is
// where viewHeap keeps the decision.
type waiting struct {
	read uint64
	slot int32
}

// viewHeap is a min-heap of waiting decisions by the position they read. The
// decisions live in a slab whose slots are reused, so a steady stream of them
// allocates nothing.
type viewHeap struct {
	items []waiting
	slab  []laterView
	free  []int32
}

func (h *viewHeap) len() int { return len(h.items) }

// next is the smallest position a waiting decision read (len() must be > 0).
func (h *viewHeap) next() uint64 { return h.items[0].read }

func (h *viewHeap) push(l laterView) {
	var slot int32
	if n := len(h.free); n > 0 {
		slot, h.free = h.free[n-1], h.free[:n-1]
		h.slab[slot] = l
	} else {
		slot = int32(len(h.slab))
		h.slab = append(h.slab, l)
	}
	h.items = append(h.items, waiting{read: l.in.Position, slot: slot})
	for i := len(h.items) - 1; i > 0; {
		up := (i - 1) / 2
		if h.items[up].read <= h.items[i].read {
			break
		}
		h.items[up], h.items[i] = h.items[i], h.items[up]
		i = up
	}
}

// pop removes and returns the decision that read earliest (len() must be > 0).
func (h *viewHeap) pop() laterView {
	top := h.items[0]
	l := h.slab[top.slot]
	h.slab[top.slot] = laterView{}
	h.free = append(h.free, top.slot)
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	h.items = h.items[:last]
	for i := 0; ; {
		least, left, right := i, 2*i+1, 2*i+2
		if left < last && h.items[left].read < h.items[least].read {
			least = left
		}
		if right < last && h.items[right].read < h.items[least].read {
			least = right
		}
		if least == i {
			break
		}
		h.items[least], h.items[i] = h.items[i], h.items[least]
		i = least
	}
	return l
}

// Finish compares the decisions still waiting, and those left for the second pass
// (reading st again up to the last position they read), and returns the report.
// Returns the first error Record met, or st's read error.
func (r *Replayer) Finish(ctx context.Context, st store.Store) (ReplayReport, error) {
	r.Close()
	if r.err != nil {
		return r.rep, fmt.Errorf("replay decisions: %w", r.err)
	}
	r.advance(math.MaxUint64)
	if len(r.late) > 0 {
		if err := compareLater(ctx, st, r.late, r.chk); err != nil {
			return r.rep, fmt.Errorf("replay decisions: %w", err)
		}
	}
	slices.SortStableFunc(r.rep.Mismatches, func(a, b Mismatch) int { return cmp.Compare(a.Position, b.Position) })
	if r.progress != nil {
		r.progress(r.upTo, r.upTo)
	}
	return r.rep, nil
}
