package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"runtime"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// The stream index (stream|version -> position) is written to the file in bulk, not
// at every commit: concurrent appends to many streams would otherwise dirty one index
// page per stream per commit, several times the pages of the log itself. Entries of
// positions after meta "indexed" live in memory (Store.recent) and are rebuilt from
// the log at open; every indexFlushEvery events they are written in the commit's
// own transaction. Reads merge the two.
const indexFlushEvery = 4096

var keyIndexed = []byte("indexed")

// streamEntry locates one event of a stream.
type streamEntry struct {
	version, pos uint64
}

type stagedEntry struct {
	stream string
	streamEntry
}

func streamKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

// loadRecent reads meta "indexed" and rebuilds the in-memory entries after it. A
// record that does not decode is logged and left out.
func (s *Store) loadRecent(tx *bolt.Tx) error {
	s.recent, s.recentN, s.indexed = map[string][]streamEntry{}, 0, 0
	if v := tx.Bucket(bktMeta).Get(keyIndexed); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("%w: indexed meta of %d bytes", ErrInconsistent, len(v))
		}
		s.indexed = u64(v)
	}
	c := tx.Bucket(bktLog).Cursor()
	for k, v := c.Seek(putU64(s.indexed + 1)); k != nil; k, v = c.Next() {
		e, err := decodeAt(u64(k), v)
		if err != nil {
			// Open anyway, so that Verify and Check can say what is wrong.
			s.opts.Logger.Error("event store: record does not decode; stream reads will miss it", "path", s.path, "err", err)
			continue
		}
		s.recent[e.Subject] = append(s.recent[e.Subject], streamEntry{e.StreamVersion, u64(k)})
		s.recentN++
	}
	return nil
}

// flushIndex writes the in-memory entries and those of the batch to the stream
// bucket and moves meta "indexed" to the batch's last position. It runs on the
// writer goroutine, the only one that changes s.recent.
func (s *Store) flushIndex(b bucketSet, st *batchState, arena []byte) ([]byte, error) {
	put := func(stream string, e streamEntry) error {
		k := len(arena)
		arena = streamKey(arena, stream, e.version)
		v := len(arena)
		arena = binary.BigEndian.AppendUint64(arena, e.pos)
		return b.stream.Put(arena[k:v:v], arena[v:len(arena):len(arena)])
	}
	for stream, entries := range s.recent {
		for _, e := range entries {
			if err := put(stream, e); err != nil {
				return arena, err
			}
		}
	}
	for _, e := range st.entries {
		if err := put(e.stream, e.streamEntry); err != nil {
			return arena, err
		}
	}
	st.flushed = true
	return arena, b.meta.Put(keyIndexed, putU64(st.pos))
}

// publishIndex moves a committed batch's entries into memory; called under s.mu.
func (s *Store) publishIndex(st *batchState) {
	if st.flushed {
		s.recent, s.recentN, s.indexed = map[string][]streamEntry{}, 0, st.pos
		return
	}
	for _, e := range st.entries {
		s.recent[e.stream] = append(s.recent[e.stream], e.streamEntry)
	}
	s.recentN += len(st.entries)
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
		out, retry, err := s.readStream(tx, stream, from, limit)
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
	for _, e := range s.recent[stream] {
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
