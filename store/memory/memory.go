// Package memory is the in-memory reference model of store.Store: the same sealing,
// hash chain, idempotency and ordering rules as the durable store, without a disk.
// It is meant for tests and as the model the durable store is compared with.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

var _ store.Store = (*Store)(nil)

type snapshot struct {
	pos  uint64
	data []byte
}

// Store is an in-memory event store. The zero value is not usable; call New.
type Store struct {
	mu        sync.RWMutex
	closed    bool
	records   [][]byte          // records[p-1] is the stored record at position p
	envs      []events.Envelope // sealed envelopes, same index
	timeMax   []int64           // running maximum of event times (unix nanos) per position
	head      [32]byte
	tree      *store.Tree
	streams   map[string][]uint64 // stream -> positions, index = version-1
	ids       map[string]uint64
	ckpts     map[string]uint64
	snapshots map[string]snapshot
	series    map[string][]snapshot // SaveSnapshotAt's series, each sorted by position
	secrets   map[string][]byte
	observers store.Observers
	// notify is closed and replaced on every commit: a broadcast to Wait callers.
	notify chan struct{}
}

// New returns an empty store.
func New() *Store {
	return &Store{
		streams:   map[string][]uint64{},
		ids:       map[string]uint64{},
		ckpts:     map[string]uint64{},
		snapshots: map[string]snapshot{},
		series:    map[string][]snapshot{},
		secrets:   map[string][]byte{},
		notify:    make(chan struct{}),
		tree:      store.NewTree(),
	}
}

// Append implements store.Store. When every envelope is already stored (a retry), it
// succeeds without a version check and reports the earlier positions. Returns
// ErrInvalid for bad arguments, *store.ConflictError when the stream moved, ErrClosed
// after Close.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (store.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return store.AppendResult{}, err
	}
	if err := store.ValidateAppend(stream, evs); err != nil {
		return store.AppendResult{}, err
	}
	if expected < store.AnyVersion {
		return store.AppendResult{}, fmt.Errorf("%w: expected version %d", store.ErrInvalid, expected)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.AppendResult{}, store.ErrClosed
	}
	res := store.AppendResult{Positions: make([]uint64, len(evs))}
	version := uint64(len(s.streams[stream]))
	fresh := make([]int, 0, len(evs))
	batchIDs := map[string]int{}
	for i, e := range evs {
		if pos, ok := s.ids[e.ID]; ok {
			res.Positions[i] = pos
			res.Duplicates++
			continue
		}
		if _, ok := batchIDs[e.ID]; ok { // the same id twice in one call: stored once
			res.Duplicates++
			continue
		}
		batchIDs[e.ID] = i
		fresh = append(fresh, i)
	}
	if len(fresh) > 0 && expected != store.AnyVersion && uint64(expected) != version {
		s.barrierUnlock()
		return store.AppendResult{}, &store.ConflictError{Stream: stream, Expected: expected, Actual: version}
	}

	// Seal everything first so that a failure leaves no trace.
	pos, prev := uint64(len(s.records)), s.head
	sealed := make([]events.Envelope, 0, len(fresh))
	records := make([][]byte, 0, len(fresh))
	for n, i := range fresh {
		env, canon, sum, err := events.Seal(evs[i], pos+1, version+uint64(n)+1, prev)
		if err != nil {
			s.mu.Unlock()
			return store.AppendResult{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		pos, prev = pos+1, sum
		res.Positions[i] = pos
		rec := events.EncodeRecord(canon, sum)
		// Keep what a durable store would read back (compacted data), not the input.
		if env, err = events.DecodeRecord(rec); err != nil {
			s.mu.Unlock()
			return store.AppendResult{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
		}
		sealed = append(sealed, env)
		records = append(records, rec)
	}
	for i, e := range evs {
		if j, ok := batchIDs[e.ID]; ok && j != i {
			res.Positions[i] = res.Positions[j]
		}
	}
	for n, env := range sealed {
		p := uint64(len(s.records)) + 1
		s.records = append(s.records, records[n])
		s.envs = append(s.envs, env)
		t := env.Time.UnixNano()
		if len(s.timeMax) > 0 {
			t = max(t, s.timeMax[len(s.timeMax)-1])
		}
		s.timeMax = append(s.timeMax, t)
		s.streams[stream] = append(s.streams[stream], p)
		s.ids[env.ID] = p
		hash, _, _ := events.SplitRecord(records[n])
		s.tree.Append(hash)
	}
	s.head = prev
	res.StreamVersion = uint64(len(s.streams[stream]))
	if len(sealed) == 0 {
		s.barrierUnlock()
		return res, nil
	}
	wake, done := s.notify, make(chan struct{})
	s.notify = make(chan struct{})
	// Published under mu, so in position order; delivered on the observers' own
	// goroutines. The Append returns once they have seen it.
	s.observers.Publish(uint64(sealed[0].Sequence), pos, func() []events.Envelope { return cloneAll(sealed) },
		func() { close(wake); close(done) })
	s.mu.Unlock()
	<-done
	return res, nil
}

// barrierUnlock releases s.mu and returns once the observers have seen every commit
// so far: a caller that conflicted (or only retried) reads projections next, and must
// find there the write it conflicted with.
func (s *Store) barrierUnlock() {
	done := make(chan struct{})
	s.observers.Barrier(uint64(len(s.records)), func() { close(done) })
	s.mu.Unlock()
	<-done
}

func clone(e events.Envelope) events.Envelope {
	e.Data = slices.Clone(e.Data)
	return e
}

func cloneAll(evs []events.Envelope) []events.Envelope {
	out := make([]events.Envelope, len(evs))
	for i, e := range evs {
		out[i] = clone(e)
	}
	return out
}

// ReadStream implements store.Store. A limit <= 0 means no limit.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Envelope, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	positions := s.streams[stream]
	from = max(from, 1)
	var out []events.Envelope
	for v := from; v <= uint64(len(positions)); v++ {
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, clone(s.envs[positions[v-1]-1]))
	}
	return out, nil
}

// ReadAll implements store.Store. A limit <= 0 means no limit.
func (s *Store) ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	from = max(from, 1)
	var out []events.Envelope
	for p := from; p <= uint64(len(s.envs)); p++ {
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, clone(s.envs[p-1]))
	}
	return out, nil
}

// ReadRecords implements store.Store. It scans a snapshot of the log taken at the
// call, so fn may call other read methods.
func (s *Store) ReadRecords(ctx context.Context, from uint64, fn func(pos uint64, rec []byte) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	records := s.records
	s.mu.RUnlock()
	for p := max(from, 1); p <= uint64(len(records)); p++ {
		if p%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(p, records[p-1]); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (uint64, [32]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, [32]byte{}, store.ErrClosed
	}
	return uint64(len(s.records)), s.head, ctx.Err()
}

// Tree implements store.Store.
func (s *Store) Tree(ctx context.Context) (*store.Tree, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	return s.tree.Clone(), ctx.Err()
}

// PositionAt implements store.Store. Event times need not be monotonic; the store
// uses the running maximum of event times, so the answer is the longest prefix of the
// log in which no event is later than t.
func (s *Store) PositionAt(ctx context.Context, t time.Time) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	n := t.UnixNano()
	i := sort.Search(len(s.timeMax), func(i int) bool { return s.timeMax[i] > n })
	return uint64(i), ctx.Err()
}

// StreamVersion implements store.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	return uint64(len(s.streams[stream])), ctx.Err()
}

// Wait implements store.Store. Returns ctx.Err() when ctx ends first and ErrClosed
// when the store is closed while waiting.
func (s *Store) Wait(ctx context.Context, after uint64) (uint64, error) {
	return store.WaitHead(ctx, after, func() (uint64, <-chan struct{}, bool) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return uint64(len(s.records)), s.notify, s.closed
	})
}

// Observe implements store.Store. It may be called from an observer; fn then sees
// the commits after the one being delivered.
func (s *Store) Observe(fn store.Observer) (stop func()) { return s.observers.Add(fn, s.ReadAll) }

// Checkpoint implements store.Store. Returns ErrNotFound if name was never set.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	pos, ok := s.ckpts[name]
	if !ok {
		return 0, fmt.Errorf("checkpoint %q: %w", name, store.ErrNotFound)
	}
	return pos, ctx.Err()
}

// SetCheckpoint implements store.Store.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.ckpts[name] = pos
	return ctx.Err()
}

// SaveSnapshot implements store.Store. The data is copied.
func (s *Store) SaveSnapshot(ctx context.Context, name string, pos uint64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.snapshots[name] = snapshot{pos: pos, data: slices.Clone(data)}
	return ctx.Err()
}

// LoadSnapshot implements store.Store. Returns ErrNotFound if none was saved.
func (s *Store) LoadSnapshot(ctx context.Context, name string) (uint64, []byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, nil, store.ErrClosed
	}
	snap, ok := s.snapshots[name]
	if !ok {
		return 0, nil, fmt.Errorf("snapshot %q: %w", name, store.ErrNotFound)
	}
	return snap.pos, slices.Clone(snap.data), ctx.Err()
}

// PutSecret implements store.Store. The first value stored under a ref is kept.
func (s *Store) PutSecret(ctx context.Context, ref string, value []byte) error {
	if ref == "" {
		return fmt.Errorf("%w: empty secret ref", store.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if _, ok := s.secrets[ref]; !ok {
		s.secrets[ref] = slices.Clone(value)
	}
	return ctx.Err()
}

// Secret implements store.Store. Returns ErrNotFound if ref was never stored.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	v, ok := s.secrets[ref]
	if !ok {
		return nil, fmt.Errorf("secret %q: %w", ref, store.ErrNotFound)
	}
	return slices.Clone(v), ctx.Err()
}

// Close implements store.Store. Waiters return ErrClosed; later calls fail with
// ErrClosed. Closing twice is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.notify)
	}
	s.mu.Unlock()
	s.observers.Close()
	return nil
}
