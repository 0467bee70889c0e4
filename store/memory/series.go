package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mcpes/mcpes/store"
)

// SaveSnapshotAt implements store.Store. The data is copied.
func (s *Store) SaveSnapshotAt(ctx context.Context, name string, pos uint64, data []byte) error {
	if name == "" {
		return fmt.Errorf("%w: empty snapshot name", store.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	list := s.series[name]
	i := sort.Search(len(list), func(i int) bool { return list[i].pos >= pos })
	snap := snapshot{pos: pos, data: slices.Clone(data)}
	if i < len(list) && list[i].pos == pos {
		list[i] = snap
	} else {
		list = slices.Insert(list, i, snap)
	}
	s.series[name] = list
	return ctx.Err()
}

// LoadSnapshotAt implements store.Store.
func (s *Store) LoadSnapshotAt(ctx context.Context, name string, pos uint64) (uint64, []byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, nil, store.ErrClosed
	}
	list := s.series[name]
	i := sort.Search(len(list), func(i int) bool { return list[i].pos > pos })
	if i == 0 {
		return 0, nil, fmt.Errorf("snapshot %q at or before %d: %w", name, pos, store.ErrNotFound)
	}
	return list[i-1].pos, slices.Clone(list[i-1].data), ctx.Err()
}

// Streams implements store.Store.
func (s *Store) Streams(ctx context.Context, prefix string, fn func(stream string) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	var names []string
	for name := range s.streams {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	s.mu.RUnlock()
	slices.Sort(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(name); err != nil {
			return err
		}
	}
	return nil
}
