package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/store"
)

// bktSeries holds SaveSnapshotAt's snapshot series: key name 0x00 position (8 bytes,
// big-endian), so the newest snapshot at or before a position is one cursor seek. The
// bucket is made by the first SaveSnapshotAt, so files written before it open as they
// are (read-only too).
var bktSeries = []byte("snapshotSeries")

func seriesKey(name string, pos uint64) []byte {
	k := append([]byte(name), 0)
	return binary.BigEndian.AppendUint64(k, pos)
}

// SaveSnapshotAt implements store.Store. The data is copied.
func (s *Store) SaveSnapshotAt(ctx context.Context, name string, pos uint64, data []byte) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: snapshot name %q", store.ErrInvalid, name)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktSeries)
		if err != nil {
			return err
		}
		return b.Put(seriesKey(name, pos), slices.Clone(data))
	})
}

// LoadSnapshotAt implements store.Store.
func (s *Store) LoadSnapshotAt(ctx context.Context, name string, pos uint64) (uint64, []byte, error) {
	var (
		at   uint64
		data []byte
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		notFound := fmt.Errorf("snapshot %q at or before %d: %w", name, pos, store.ErrNotFound)
		b := tx.Bucket(bktSeries)
		if b == nil {
			return notFound
		}
		prefix := append([]byte(name), 0)
		c := b.Cursor()
		k, v := c.Seek(seriesKey(name, pos))
		switch {
		case k == nil:
			k, v = c.Last()
		case !bytes.Equal(k, seriesKey(name, pos)):
			k, v = c.Prev()
		}
		if k == nil || len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
			return notFound
		}
		at, data = u64(k[len(prefix):]), slices.Clone(v)
		return nil
	})
	return at, data, err
}

// Streams implements store.Store: the stream heads written to the file and those
// still in memory, merged.
func (s *Store) Streams(ctx context.Context, prefix string, fn func(stream string) error) error {
	names := map[string]struct{}{}
	s.mu.RLock()
	for name := range s.recent.streams {
		if strings.HasPrefix(name, prefix) {
			names[name] = struct{}{}
		}
	}
	s.mu.RUnlock()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bktStreams).Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			names[string(k)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(name); err != nil {
			return err
		}
	}
	return nil
}
