package projections

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Options tune Load.
type Options struct {
	// Logger receives warnings (a discarded snapshot, an event that did not decode).
	// Defaults to slog.Default().
	Logger *slog.Logger
	// NoSnapshot ignores any stored snapshot and replays from position 0.
	NoSnapshot bool
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// follower is what every projection shares: its position, the hash of the event at
// that position (so a replayed tail is chain-checked from a snapshot on), in-order
// application of events arriving from the store's observer and from reads, and the
// filling of gaps between the two.
type follower struct {
	// pos is the position the projection has applied up to. A fold stores it while
	// holding the lock of the state it changed, so a reader holding that lock reads a
	// position its state is consistent with.
	pos atomic.Uint64

	wmu      sync.Mutex // serialises folds; guards everything below
	lastHash [32]byte
	pending  []pendingEvent // events beyond a gap, sorted by position
	loading  bool
	st       store.Store
	log      *slog.Logger
	catching atomic.Bool
	// warnedGap is set once a gap was skipped for want of a store.
	warnedGap bool
	// fold applies one event; called with wmu held and ev.pos == pos+1. It must store
	// pos (it may leave that to the caller when it changed nothing).
	fold func(ev *rawEvent) error
}

type pendingEvent struct {
	ev   rawEvent
	hash [32]byte
}

// Position returns the log position the projection has applied up to.
func (f *follower) Position() uint64 { return f.pos.Load() }

// applyEnvelopes is the store.Observer path. Events at or below the position are
// skipped; events beyond a gap wait in pending until the gap is filled from the store.
func (f *follower) applyEnvelopes(evs []events.Envelope) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for i := range evs {
		e := &evs[i]
		p := uint64(e.Sequence)
		if p <= f.pos.Load() {
			continue
		}
		hash, _ := events.ParseHash(e.Hash)
		ev := rawFromEnvelope(e)
		if p != f.pos.Load()+1 {
			if f.st == nil {
				// Not made by Load: there is no log to read the gap from. Say so once and
				// follow from here rather than hold every later event for ever.
				if !f.warnedGap {
					f.warnedGap = true
					f.logger().Warn("projection has no store to fill a gap from; events skipped",
						"from", f.pos.Load()+1, "to", p-1)
				}
				f.applyOne(&ev, hash)
				continue
			}
			f.addPending(pendingEvent{ev: ev, hash: hash})
			continue
		}
		f.applyOne(&ev, hash)
		f.drainPending()
	}
	if len(f.pending) > 0 && !f.loading && f.st != nil && f.catching.CompareAndSwap(false, true) {
		// A gap after loading means an observer missed commits; fill it from the log
		// in the background (the observer must not block on store reads).
		go func() {
			defer f.catching.Store(false)
			if err := f.catchUp(context.Background()); err != nil {
				f.logger().Error("projection catch-up failed", "err", err)
			}
		}()
	}
}

// applySparse folds events of a chosen subset of the log, in order: positions may
// skip events the caller knows change nothing here. Events at or below the position
// are skipped; there is no gap to fill.
func (f *follower) applySparse(evs []events.Envelope) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for i := range evs {
		e := &evs[i]
		if uint64(e.Sequence) <= f.pos.Load() {
			continue
		}
		hash, _ := events.ParseHash(e.Hash)
		ev := rawFromEnvelope(e)
		f.applyOne(&ev, hash)
	}
}

func (f *follower) logger() *slog.Logger {
	if f.log != nil {
		return f.log
	}
	return slog.Default()
}

func (f *follower) addPending(pe pendingEvent) {
	i, found := slices.BinarySearchFunc(f.pending, pe.ev.pos, func(a pendingEvent, p uint64) int {
		return cmpUint(a.ev.pos, p)
	})
	if !found {
		// Observed envelopes own their data; keep it.
		f.pending = slices.Insert(f.pending, i, pe)
	}
}

func (f *follower) drainPending() {
	n := 0
	for n < len(f.pending) {
		pe := &f.pending[n]
		if pe.ev.pos <= f.pos.Load() {
			n++
			continue
		}
		if pe.ev.pos != f.pos.Load()+1 {
			break
		}
		f.applyOne(&pe.ev, pe.hash)
		n++
	}
	if n > 0 {
		f.pending = slices.Delete(f.pending, 0, n)
	}
}

// applyOne folds ev (at pos+1) and moves the position. A fold error is logged and the
// event skipped: the observer path has no caller to return it to.
func (f *follower) applyOne(ev *rawEvent, hash [32]byte) {
	if err := f.fold(ev); err != nil {
		f.logger().Warn("projection skipped an event", "position", ev.pos, "type", ev.typ, "err", err)
	}
	f.pos.Store(ev.pos)
	f.lastHash = hash
}

// applyRecord is the replay path: it checks the record chains to the previous one,
// scans it and folds it. Records at or below the position are skipped. Returns an
// error wrapping events.ErrCorrupt when the chain or the envelope is broken, and the
// fold's error when a known event does not decode.
func (f *follower) applyRecord(pos uint64, rec []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.applyRecordLocked(pos, rec)
}

func (f *follower) applyRecordLocked(pos uint64, rec []byte) error {
	cur := f.pos.Load()
	if pos <= cur {
		return nil
	}
	if pos != cur+1 {
		return fmt.Errorf("%w: record %d follows position %d", events.ErrCorrupt, pos, cur)
	}
	hash, err := events.CheckRecord(f.lastHash, rec)
	if err != nil {
		return fmt.Errorf("position %d: %w", pos, err)
	}
	var ev rawEvent
	if err := scanEnvelope(rec[33:], &ev, nil); err != nil {
		return fmt.Errorf("position %d: %w", pos, err)
	}
	if ev.pos != pos {
		return fmt.Errorf("%w: record at %d says sequence %d", events.ErrCorrupt, pos, ev.pos)
	}
	if err := f.fold(&ev); err != nil {
		return fmt.Errorf("position %d: %w", pos, err)
	}
	f.pos.Store(pos)
	f.lastHash = hash
	f.drainPending()
	return nil
}

// replay folds the log from the position on, up to until (0 = the end), checking the
// chain. Events arriving meanwhile through the observer are applied or wait in
// pending; replay runs again while a gap remains.
func (f *follower) replay(ctx context.Context, st store.Store, until uint64) error {
	for {
		f.wmu.Lock()
		before, prev := f.pos.Load(), f.lastHash
		f.wmu.Unlock()
		if until > 0 && before >= until {
			return nil
		}
		rf := newRecordFolder(f)
		err := scanChecked(ctx, st, before+1, prev, until, func(pos uint64, hash [32]byte, canon []byte) error {
			return rf.fold(pos, hash, canon)
		})
		if err != nil {
			return err
		}
		f.wmu.Lock()
		gap := len(f.pending) > 0 && f.pending[0].ev.pos > f.pos.Load()+1
		if !gap {
			f.drainPending()
			f.loading = false
		}
		f.wmu.Unlock()
		if !gap || (until > 0 && f.pos.Load() >= until) {
			return nil
		}
		if f.pos.Load() == before {
			return fmt.Errorf("projection stuck at %d: observed events beyond it are not in the store", before)
		}
	}
}

func (f *follower) catchUp(ctx context.Context) error {
	return f.replay(ctx, f.st, 0)
}

// loadFrom prepares a follower for Load: it installs the snapshot state (done by the
// caller) and marks it loading so the observer does not start its own catch-up.
func (f *follower) startLoading(st store.Store, log *slog.Logger) {
	f.wmu.Lock()
	f.st, f.log, f.loading = st, log, true
	f.wmu.Unlock()
}

// snapshotHeader is stored in front of every projection snapshot.
type snapshotHeader struct {
	Format   int    `json:"format"`
	Position uint64 `json:"position"`
	Hash     string `json:"hash"`
}

func (f *follower) header(format int) snapshotHeader {
	return snapshotHeader{Format: format, Position: f.pos.Load(), Hash: hex.EncodeToString(f.lastHash[:])}
}

// restore sets the position and hash from a snapshot header.
func (f *follower) restore(h snapshotHeader) error {
	hash, err := events.ParseHash(h.Hash)
	if err != nil {
		return err
	}
	f.pos.Store(h.Position)
	f.lastHash = hash
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// foldChecked folds an event whose record the caller chain-checked. Events at or
// below the position are skipped (the observer got there first); a gap is an error.
func (f *follower) foldChecked(ev *rawEvent, hash [32]byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	cur := f.pos.Load()
	if ev.pos <= cur {
		return nil
	}
	if ev.pos != cur+1 {
		return fmt.Errorf("%w: event %d follows position %d", events.ErrCorrupt, ev.pos, cur)
	}
	if err := f.fold(ev); err != nil {
		return err
	}
	f.pos.Store(ev.pos)
	f.lastHash = hash
	f.drainPending()
	return nil
}
