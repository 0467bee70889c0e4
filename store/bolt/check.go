package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Check verifies the store's internal invariants in one read transaction: positions
// gap-free from 1, the hash chain, every record decoding with its own position, stream
// versions contiguous from 1 per stream, and the indexes (stream, streams, ids, time
// in the file up to meta "indexed", in memory after it) holding exactly one correct
// entry per record, and the head meta and Merkle tree matching the records. It is meant for tests
// and `mcpes verify`; it reads the whole file. Returns an error wrapping
// ErrInconsistent that lists the first problems.
func (s *Store) Check(ctx context.Context) error {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		s.mu.RLock()
		recent := newRecent(0)
		for _, e := range s.recent.times {
			recent.times = append(recent.times, e)
		}
		for k, v := range s.recent.streams {
			recent.streams[k] = append([]streamEntry(nil), v...)
		}
		for k, v := range s.recent.ids {
			recent.ids[k] = v
		}
		indexed := s.indexed
		s.mu.RUnlock()
		return check(ctx, tx, add, indexed, &recent)
	})
	if err != nil {
		return fmt.Errorf("check %s: %w", s.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check %s: %w:\n  %s", s.path, ErrInconsistent, strings.Join(problems, "\n  "))
	}
	if h, _, _ := s.Head(ctx); h != s.fileHead() {
		return fmt.Errorf("check %s: %w: in-memory head %d, file head %d", s.path, ErrInconsistent, h, s.fileHead())
	}
	return nil
}

func (s *Store) fileHead() uint64 {
	var head uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktMeta).Get(keyHead); len(v) == 48 {
			head = u64(v)
		}
		return nil
	})
	return head
}

// fact is what Check learns about one record from the log.
type fact struct {
	stream  string
	version uint64
	id      string
	tmax    int64
}

func check(ctx context.Context, tx *bolt.Tx, add func(string, ...any), indexed uint64, recent *recentIndex) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			add("bucket %q missing", name)
			return nil
		}
	}
	var (
		last     uint64
		prev     = events.ZeroHash
		versions = map[string]uint64{}
		seen     = map[string]uint64{}
		facts    = []fact{{}} // facts[pos]
		tmax     int64
		tree     = store.NewTree()
	)
	c := tx.Bucket(bktLog).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			add("log key %x is not a position", k)
			continue
		}
		pos := u64(k)
		if pos != last+1 {
			add("log: position %d follows %d", pos, last)
			return nil // the rest would only repeat this
		}
		last = pos
		hash, err := events.CheckRecord(prev, v)
		if err != nil {
			add("log %d: %v", pos, err)
		}
		prev = hash
		tree.Append(hash)
		e, err := events.DecodeRecord(v)
		if err != nil {
			add("log %d: %v", pos, err)
			facts = append(facts, fact{})
			continue
		}
		if uint64(e.Sequence) != pos {
			add("log %d: sequence %d", pos, e.Sequence)
		}
		versions[e.Subject]++
		if e.StreamVersion != versions[e.Subject] {
			add("log %d: stream %s version %d, want %d", pos, e.Subject, e.StreamVersion, versions[e.Subject])
		}
		if old, dup := seen[e.ID]; dup {
			add("log %d: id %s already at %d", pos, e.ID, old)
		}
		seen[e.ID] = pos
		if t := e.Time.UnixNano(); pos == 1 || t > tmax {
			tmax = t
		}
		facts = append(facts, fact{e.Subject, e.StreamVersion, e.ID, tmax})
		if pos%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if v := tx.Bucket(bktMeta).Get(keyHead); v != nil || last > 0 {
		head, hash, mt, err := decodeHead(v)
		switch {
		case err != nil:
			add("meta head: %v", err)
		case head != last || hash != prev:
			add("meta head %d %x, last record %d %x", head, hash[:6], last, prev[:6])
		case mt != tmax:
			add("meta time %d, records say %d", mt, tmax)
		}
	}
	if v := tx.Bucket(bktMeta).Get(keyTree); v != nil || last > 0 {
		stored, err := store.UnmarshalTree(v)
		switch {
		case err != nil:
			add("meta tree: %v", err)
		case stored.Size() != tree.Size() || stored.Root() != tree.Root():
			add("meta tree of size %d root %x, records give size %d root %x", stored.Size(), stored.Root(), tree.Size(), tree.Root())
		}
	}
	if v := tx.Bucket(bktMeta).Get(keyIndexed); (v == nil && indexed != 0) || (v != nil && u64(v) != indexed) || indexed > last {
		add("meta indexed %x, store says %d, last record %d", v, indexed, last)
		return nil
	}
	checkRecent(add, indexed, last, facts, recent)
	checkFileIndexes(tx, add, indexed, facts)
	return nil
}

// checkRecent compares the in-memory entries with the records after indexed.
func checkRecent(add func(string, ...any), indexed, last uint64, facts []fact, r *recentIndex) {
	n := 0
	for stream, es := range r.streams {
		for i, e := range es {
			n++
			if e.pos <= indexed || e.pos > last || facts[e.pos].stream != stream || facts[e.pos].version != e.version {
				add("recent stream index: %s@%d -> %d (indexed up to %d)", stream, e.version, e.pos, indexed)
			} else if i > 0 && es[i-1].version+1 != e.version {
				add("recent stream index: %s@%d after @%d", stream, e.version, es[i-1].version)
			}
		}
	}
	want := int(last - indexed)
	if n != want || len(r.ids) != want || len(r.times) != want {
		add("recent index: %d stream, %d id, %d time entries for positions %d..%d", n, len(r.ids), len(r.times), indexed+1, last)
	}
	for id, pos := range r.ids {
		if pos <= indexed || pos > last || facts[pos].id != id {
			add("recent ids: %s -> %d", id, pos)
		}
	}
	for i, e := range r.times {
		if pos := indexed + uint64(i) + 1; e.pos != pos || pos > last || facts[pos].tmax != e.tmax {
			add("recent time index: entry %d is position %d at %d", i, e.pos, e.tmax)
		}
	}
}

// checkFileIndexes compares the index buckets with the records up to indexed.
func checkFileIndexes(tx *bolt.Tx, add func(string, ...any), indexed uint64, facts []fact) {
	n := 0
	_ = tx.Bucket(bktIDs).ForEach(func(k, v []byte) error {
		n++
		if len(v) != 8 || u64(v) == 0 || u64(v) > indexed || facts[u64(v)].id != string(k) {
			add("ids: %s -> %x (indexed up to %d)", k, v, indexed)
		}
		return nil
	})
	if n != int(indexed) {
		add("ids: %d entries, indexed up to %d", n, indexed)
	}
	n = 0
	heads := map[string]uint64{}
	_ = tx.Bucket(bktStream).ForEach(func(k, v []byte) error {
		n++
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 || len(v) != 8 {
			add("stream index: bad entry %q", k)
			return nil
		}
		stream, version, pos := string(k[:i]), binary.BigEndian.Uint64(k[i+1:]), u64(v)
		if pos == 0 || pos > indexed || facts[pos].stream != stream || facts[pos].version != version {
			add("stream index: %s@%d -> %d (indexed up to %d)", stream, version, pos, indexed)
			return nil
		}
		if version != heads[stream]+1 {
			add("stream index: %s@%d after @%d", stream, version, heads[stream])
		}
		heads[stream] = version
		return nil
	})
	if n != int(indexed) {
		add("stream index: %d entries, indexed up to %d", n, indexed)
	}
	n = 0
	_ = tx.Bucket(bktStreams).ForEach(func(k, v []byte) error {
		n++
		if len(v) != 8 || u64(v) != heads[string(k)] {
			add("streams: %s at %x, index says %d", k, v, heads[string(k)])
		}
		return nil
	})
	if n != len(heads) {
		add("streams: %d heads for %d streams", n, len(heads))
	}
	n = 0
	_ = tx.Bucket(bktTime).ForEach(func(k, v []byte) error {
		n++
		if len(k) != 16 {
			add("time index: bad key %x", k)
			return nil
		}
		if pos := u64(k[8:]); pos != uint64(n) || pos > indexed || timeKey(facts[pos].tmax) != u64(k) {
			add("time index: entry %d is position %d at %x", n, pos, k[:8])
		}
		return nil
	})
	if n != int(indexed) {
		add("time index: %d entries, indexed up to %d", n, indexed)
	}
}
