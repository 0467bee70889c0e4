package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// The per-event indexes (stream, ids, time, and the stream heads in streams) are
// written to the file in bulk, not at every commit: concurrent appends to many
// streams would otherwise dirty several index pages per commit, more than the log
// itself. Entries of positions after meta "indexed" live in memory (recentIndex) and
// are rebuilt from the log at open; once IndexEvery of them are pending they are
// written in a commit's own transaction. Reads and the writer's checks merge the two.
const indexFlushEvery = 4096

var keyIndexed = []byte("indexed")

// streamEntry locates one event of a stream.
type streamEntry struct {
	version, pos uint64
}

// stagedEntry is what one appended event adds to the indexes.
type stagedEntry struct {
	stream string
	id     string
	tmax   int64 // running maximum of event times at this position
	streamEntry
}

// recentIndex holds the index entries of positions after Store.indexed. Only the
// writer changes it, under Store.mu.
type recentIndex struct {
	streams map[string][]streamEntry
	ids     map[string]uint64
	times   []stagedEntry // in position order
}

// newRecent returns an empty index sized for n entries, so that it does not grow
// (rehashing every id) on the writer's path.
func newRecent(n int) recentIndex {
	return recentIndex{streams: map[string][]streamEntry{}, ids: make(map[string]uint64, n), times: make([]stagedEntry, 0, n)}
}

func (r *recentIndex) add(e stagedEntry) {
	r.streams[e.stream] = append(r.streams[e.stream], e.streamEntry)
	r.ids[e.id] = e.pos
	r.times = append(r.times, e)
}

// version returns the stream's version from the recent entries, if it has any.
func (r *recentIndex) version(stream string) (uint64, bool) {
	if es := r.streams[stream]; len(es) > 0 {
		return es[len(es)-1].version, true
	}
	return 0, false
}

func streamKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

// loadRecent reads meta "indexed" and rebuilds the in-memory entries after it. A
// record that does not decode is logged and left out.
func (s *Store) loadRecent(tx *bolt.Tx) error {
	s.recent, s.indexed = newRecent(s.opts.IndexEvery), 0
	if v := tx.Bucket(bktMeta).Get(keyIndexed); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: indexed meta of %d bytes", ErrInconsistent, len(v))
		}
		s.indexed = u64(v)
	}
	s.idsMax = ""
	if k, _ := tx.Bucket(bktIDs).Cursor().Last(); k != nil {
		s.idsMax = string(k)
	}
	s.idsTop = s.idsMax
	var tmax int64
	if k, _ := tx.Bucket(bktTime).Cursor().Last(); len(k) == 16 {
		tmax = int64(u64(k) ^ (1 << 63))
	}
	c := tx.Bucket(bktLog).Cursor()
	for k, v := c.Seek(putU64(s.indexed + 1)); k != nil; k, v = c.Next() {
		e, err := decodeAt(u64(k), v)
		if err != nil {
			// Open anyway, so that Verify and Check can say what is wrong.
			s.opts.Logger.Error("event store: record does not decode; reads will miss it", "path", s.path, "err", err)
			continue
		}
		pos := u64(k)
		if t := e.Time.UnixNano(); pos == 1 || t > tmax {
			tmax = t
		}
		s.recent.add(stagedEntry{stream: e.Subject, id: e.ID, tmax: tmax, streamEntry: streamEntry{e.StreamVersion, pos}})
		s.idsTop = max(s.idsTop, e.ID)
	}
	return nil
}

// flushIndex writes the in-memory entries and those of the batch to the index
// buckets and moves meta "indexed" to the batch's last position. It runs on the
// writer goroutine, the only one that changes s.recent.
func (s *Store) flushIndex(b bucketSet, st *batchState, arena []byte) ([]byte, error) {
	// The batch's entries by stream, after the recent ones of each stream.
	batch := map[string][]streamEntry{}
	for _, e := range st.entries {
		batch[e.stream] = append(batch[e.stream], e.streamEntry)
	}
	names := slices.AppendSeq(make([]string, 0, len(s.recent.streams)+len(batch)), maps.Keys(s.recent.streams))
	for stream := range batch {
		if _, ok := s.recent.streams[stream]; !ok {
			names = append(names, stream)
		}
	}
	slices.Sort(names)
	// Put keys in order: bbolt splits nodes only at commit, so inserts in random
	// order into one node would shift its entries over and over.
	cut := func(start int) []byte { return arena[start:len(arena):len(arena)] }
	for _, stream := range names {
		var last uint64
		for _, es := range [2][]streamEntry{s.recent.streams[stream], batch[stream]} {
			for _, e := range es {
				k := len(arena)
				arena = streamKey(arena, stream, e.version)
				v := len(arena)
				arena = binary.BigEndian.AppendUint64(arena, e.pos)
				if err := b.stream.Put(arena[k:v:v], cut(v)); err != nil {
					return arena, err
				}
				last = e.version
			}
		}
		v := len(arena)
		arena = binary.BigEndian.AppendUint64(arena, last)
		if err := b.streams.Put([]byte(stream), cut(v)); err != nil {
			return arena, err
		}
	}
	// Every entry in position order: ids made in time order (UUIDv7) are then nearly
	// sorted already, which the sort below finds cheap.
	all := [2][]stagedEntry{s.recent.times, st.entries}
	ids := append(append(make([]stagedEntry, 0, len(all[0])+len(all[1])), all[0]...), all[1]...)
	slices.SortFunc(ids, func(a, b stagedEntry) int { return strings.Compare(a.id, b.id) })
	if len(ids) > 0 {
		// Raised before the commit: a flush that fails leaves it too high, which only
		// spares apply fewer lookups.
		s.idsMax = max(s.idsMax, ids[len(ids)-1].id)
	}
	for _, e := range ids {
		v := len(arena)
		arena = binary.BigEndian.AppendUint64(arena, e.pos)
		if err := b.ids.Put([]byte(e.id), cut(v)); err != nil {
			return arena, err
		}
	}
	for _, es := range all {
		for _, e := range es {
			k := len(arena)
			arena = binary.BigEndian.AppendUint64(arena, timeKey(e.tmax))
			arena = binary.BigEndian.AppendUint64(arena, e.pos)
			if err := b.time.Put(cut(k), nil); err != nil {
				return arena, err
			}
		}
	}
	st.flushed = true
	return arena, b.meta.Put(keyIndexed, putU64(st.pos))
}

// publishIndex moves a committed batch's entries into memory; called under s.mu.
func (s *Store) publishIndex(st *batchState) {
	if st.flushed {
		s.recent, s.indexed = newRecent(s.opts.IndexEvery), st.pos
		return
	}
	for _, e := range st.entries {
		s.recent.add(e)
	}
}

// ReadStream implements store.Store. A limit <= 0 means no limit. Returns an error
// wrapping events.ErrCorrupt for a record that does not decode.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Envelope, error) {
	from = max(from, 1)
	for {
		if s.closed.Load() {
			return nil, store.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tx, err := s.db.Begin(false)
		if err != nil {
			return nil, mapErr(err)
		}
		var out []events.Envelope
		var retry bool
		err = guarded(s.path, func() error {
			var err error
			out, retry, err = s.readStream(tx, stream, from, limit)
			return err
		})
		_ = tx.Rollback()
		if !retry {
			return out, err
		}
		runtime.Gosched() // an index flush is being published; try again
	}
}

func (s *Store) readStream(tx *bolt.Tx, stream string, from uint64, limit int) ([]events.Envelope, bool, error) {
	meta := tx.Bucket(bktMeta)
	var indexed, txHead uint64
	if v := meta.Get(keyIndexed); len(v) == 8 {
		indexed = u64(v)
	}
	if v := meta.Get(keyHead); len(v) == 48 {
		txHead = u64(v)
	}
	// The in-memory entries must continue this transaction's index exactly.
	s.mu.RLock()
	if s.indexed != indexed {
		s.mu.RUnlock()
		return nil, true, nil
	}
	var recent []streamEntry
	for _, e := range s.recent.streams[stream] {
		if e.version >= from && e.pos <= txHead {
			recent = append(recent, e)
		}
	}
	s.mu.RUnlock()

	var out []events.Envelope
	log := tx.Bucket(bktLog)
	add := func(pos uint64) error {
		e, err := decodeAt(pos, log.Get(putU64(pos)))
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}
	prefix := append([]byte(stream), 0)
	last := uint64(0)
	c := tx.Bucket(bktStream).Cursor()
	for k, v := c.Seek(streamKey(nil, stream, from)); k != nil; k, v = c.Next() {
		if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) || (limit > 0 && len(out) >= limit) {
			break
		}
		last = binary.BigEndian.Uint64(k[len(prefix):])
		if err := add(u64(v)); err != nil {
			return nil, false, err
		}
	}
	for _, e := range recent {
		if limit > 0 && len(out) >= limit {
			break
		}
		if e.version <= last {
			continue
		}
		if err := add(e.pos); err != nil {
			return nil, false, err
		}
	}
	return out, false, nil
}
