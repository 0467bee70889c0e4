package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// view runs fn in a read transaction, failing with ErrClosed on a closed store.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapErr(guarded(s.path, func() error { return s.db.View(fn) }))
}

// update runs fn in its own write transaction (checkpoints, snapshots, secrets).
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapErr(s.db.Update(fn))
}

func decodeAt(pos uint64, rec []byte) (events.Envelope, error) {
	e, err := events.DecodeRecord(rec)
	if err != nil {
		return e, fmt.Errorf("record %d: %w", pos, err)
	}
	return e, nil
}

// ReadAll implements store.Store. A limit <= 0 means no limit. Returns an error
// wrapping events.ErrCorrupt for a record that does not decode.
func (s *Store) ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error) {
	var out []events.Envelope
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bktLog).Cursor()
		for k, v := c.Seek(putU64(max(from, 1))); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			e, err := decodeAt(u64(k), v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// readChunk is how many records ReadRecords reads in one transaction: a long replay
// must not hold a read transaction that keeps the writer from growing the file.
const readChunk = 4096

// dropEvery is how many chunks a scan reads between releasing the pages it mapped:
// a release costs a walk of the page tables and the refaults of the pages around the
// range it read, so it is done once per some megabytes (16k records of a busy log
// are ~15 MB).
const dropEvery = 4

// ReadRecords implements store.Store: a cursor scan without decoding, in read
// transactions of readChunk records. It reads the file ahead of itself (prefetch),
// and every dropEvery chunks releases the mapped pages it read (dropPages), so a scan
// of the whole log runs in memory that does not grow with the file. fn must not call
// back into the store's write path, and should not call Close.
func (s *Store) ReadRecords(ctx context.Context, from uint64, fn func(pos uint64, rec []byte) error) error {
	next := max(from, 1)
	var (
		read  span
		ahead uintptr
	)
	for chunks := 1; ; chunks++ {
		n := 0
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket(bktLog).Cursor()
			for k, v := c.Seek(putU64(next)); k != nil && n < readChunk; k, v = c.Next() {
				pos := u64(k)
				read.add(v)
				if err := fn(pos, v); err != nil {
					return err
				}
				n++
				next = pos + 1
			}
			if n == readChunk {
				prefetch(tx, read, &ahead)
				if chunks%dropEvery == 0 {
					dropPages(tx, read)
					read = span{}
				}
			}
			return nil
		})
		if err != nil || n < readChunk {
			return err
		}
	}
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (uint64, [32]byte, error) {
	if s.closed.Load() {
		return 0, [32]byte{}, store.ErrClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.head, s.headHash, ctx.Err()
}

// PositionAt implements store.Store. Event times need not be monotonic: the time
// index holds the running maximum of event times, so the answer is the longest prefix
// of the log in which no event is later than t.
func (s *Store) PositionAt(ctx context.Context, t time.Time) (uint64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	n := t.UnixNano()
	s.mu.RLock()
	if times := s.recent.times; len(times) > 0 && n >= times[0].tmax {
		i := sort.Search(len(times), func(i int) bool { return times[i].tmax > n })
		pos := times[i-1].pos
		s.mu.RUnlock()
		return pos, ctx.Err()
	}
	s.mu.RUnlock()
	// Not in memory: the answer is at or before "indexed", which the file covers.
	var pos uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bktTime).Cursor()
		key := binary.BigEndian.AppendUint64(nil, timeKey(n))
		key = binary.BigEndian.AppendUint64(key, ^uint64(0))
		k, _ := c.Seek(key)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k != nil {
			pos = u64(k[8:])
		}
		return nil
	})
	return pos, err
}

// StreamVersion implements store.Store.
func (s *Store) StreamVersion(ctx context.Context, stream string) (uint64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	s.mu.RLock()
	v, ok := s.recent.version(stream)
	s.mu.RUnlock()
	if ok {
		return v, ctx.Err()
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bktStreams).Get([]byte(stream)); b != nil {
			v = u64(b)
		}
		return nil
	})
	return v, err
}

// Wait implements store.Store. Returns ctx.Err() when ctx ends first and ErrClosed
// when the store is closed while waiting.
func (s *Store) Wait(ctx context.Context, after uint64) (uint64, error) {
	return store.WaitHead(ctx, after, func() (uint64, <-chan struct{}, bool) {
		s.mu.RLock()
		head, ch := s.head, s.notify
		s.mu.RUnlock()
		return head, ch, s.closed.Load()
	})
}

// Observe implements store.Store. fn runs on its own goroutine, once per group commit
// with all its events (see store.Observers): it must not append (it would wait for
// itself), nor modify the slice, which every observer shares.
func (s *Store) Observe(fn store.Observer) (stop func()) { return s.observers.Add(fn, s.ReadAll) }

// Checkpoint implements store.Store. Returns ErrNotFound if name was never set.
func (s *Store) Checkpoint(ctx context.Context, name string) (uint64, error) {
	var pos uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bktCheckpoints).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("checkpoint %q: %w", name, store.ErrNotFound)
		}
		pos = u64(v)
		return nil
	})
	return pos, err
}

// SetCheckpoint implements store.Store; the position is fsync'd before it returns.
func (s *Store) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	if name == "" {
		return fmt.Errorf("%w: empty checkpoint name", store.ErrInvalid)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktCheckpoints).Put([]byte(name), putU64(pos))
	})
}

// SaveSnapshot implements store.Store. The data is copied.
func (s *Store) SaveSnapshot(ctx context.Context, name string, pos uint64, data []byte) error {
	if name == "" {
		return fmt.Errorf("%w: empty snapshot name", store.ErrInvalid)
	}
	v := append(putU64(pos), data...)
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktSnapshots).Put([]byte(name), v)
	})
}

// LoadSnapshot implements store.Store. Returns ErrNotFound if none was saved.
func (s *Store) LoadSnapshot(ctx context.Context, name string) (uint64, []byte, error) {
	var (
		pos  uint64
		data []byte
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bktSnapshots).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("snapshot %q: %w", name, store.ErrNotFound)
		}
		if len(v) < 8 {
			return fmt.Errorf("snapshot %q: %w: %d bytes", name, ErrInconsistent, len(v))
		}
		pos, data = u64(v), slices.Clone(v[8:])
		return nil
	})
	return pos, data, err
}

// PutSecret implements store.Store. The first value stored under a ref is kept.
func (s *Store) PutSecret(ctx context.Context, ref string, value []byte) error {
	if ref == "" {
		return fmt.Errorf("%w: empty secret ref", store.ErrInvalid)
	}
	v := slices.Clone(value)
	if v == nil {
		v = []byte{}
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bktSecrets)
		if b.Get([]byte(ref)) != nil {
			return nil
		}
		return b.Put([]byte(ref), v)
	})
}

// Secret implements store.Store. Returns ErrNotFound if ref was never stored.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bktSecrets).Get([]byte(ref))
		if v == nil {
			return fmt.Errorf("secret %q: %w", ref, store.ErrNotFound)
		}
		out = slices.Clone(v)
		if out == nil {
			out = []byte{}
		}
		return nil
	})
	return out, err
}
