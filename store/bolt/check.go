package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
)

// Check verifies the store's internal invariants in one read transaction: positions
// gap-free from 1, the hash chain, every record decoding with its own position, stream
// versions contiguous from 1 per stream, every index entry (stream, streams, ids,
// time) resolving to the record it names and every record indexed, and the head meta
// matching the last record. It is meant for tests and `mcpes verify`; it reads the
// whole file. Returns an error wrapping ErrInconsistent that lists the first problems.
func (s *Store) Check(ctx context.Context) error {
	var problems []string
	add := func(format string, args ...any) {
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		s.mu.RLock()
		recent := make(map[string][]streamEntry, len(s.recent))
		for k, v := range s.recent {
			recent[k] = append([]streamEntry(nil), v...)
		}
		indexed := s.indexed
		s.mu.RUnlock()
		return check(ctx, tx, add, indexed, recent)
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

func check(ctx context.Context, tx *bolt.Tx, add func(string, ...any), indexed uint64, recent map[string][]streamEntry) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			add("bucket %q missing", name)
			return nil
		}
	}
	type at struct {
		stream  string
		version uint64
	}
	var (
		last     uint64
		prev     = events.ZeroHash
		versions = map[string]uint64{}
		ids      = map[string]uint64{}
		byPos    = map[uint64]at{}
		tmax     int64
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
		}
		last = pos
		hash, err := events.CheckRecord(prev, v)
		if err != nil {
			add("log %d: %v", pos, err)
		}
		prev = hash
		e, err := events.DecodeRecord(v)
		if err != nil {
			add("log %d: %v", pos, err)
			continue
		}
		if uint64(e.Sequence) != pos {
			add("log %d: sequence %d", pos, e.Sequence)
		}
		versions[e.Subject]++
		if e.StreamVersion != versions[e.Subject] {
			add("log %d: stream %s version %d, want %d", pos, e.Subject, e.StreamVersion, versions[e.Subject])
		}
		if old, dup := ids[e.ID]; dup {
			add("log %d: id %s already at %d", pos, e.ID, old)
		}
		ids[e.ID] = pos
		byPos[pos] = at{e.Subject, e.StreamVersion}
		if t := e.Time.UnixNano(); pos == 1 || t > tmax {
			tmax = t
		}
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
	if v := tx.Bucket(bktMeta).Get(keyIndexed); (v == nil && indexed != 0) || (v != nil && u64(v) != indexed) || indexed > last {
		add("meta indexed %x, store says %d, last record %d", v, indexed, last)
	}
	n := 0
	for stream, entries := range recent {
		for _, e := range entries {
			n++
			if a, ok := byPos[e.pos]; !ok || e.pos <= indexed || a.stream != stream || a.version != e.version {
				add("recent index: %s@%d -> %d (indexed up to %d), which is %s@%d", stream, e.version, e.pos, indexed, a.stream, a.version)
			}
		}
	}
	if n != int(last-min(indexed, last)) {
		add("recent index: %d entries for positions %d..%d", n, indexed+1, last)
	}
	checkIndexes(tx, add, last, indexed, ids, versions, func(pos uint64) (string, uint64, bool) {
		a, ok := byPos[pos]
		return a.stream, a.version, ok
	})
	return nil
}

func checkIndexes(tx *bolt.Tx, add func(string, ...any), last, indexed uint64, ids map[string]uint64,
	versions map[string]uint64, at func(uint64) (string, uint64, bool)) {
	n := 0
	_ = tx.Bucket(bktIDs).ForEach(func(k, v []byte) error {
		n++
		if want, ok := ids[string(k)]; !ok || len(v) != 8 || u64(v) != want {
			add("ids: %s -> %x, log has it at %d", k, v, want)
		}
		return nil
	})
	if n != len(ids) {
		add("ids: %d entries for %d events", n, len(ids))
	}
	n = 0
	_ = tx.Bucket(bktStream).ForEach(func(k, v []byte) error {
		n++
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) != i+9 || len(v) != 8 {
			add("stream index: bad entry %q", k)
			return nil
		}
		stream, version := string(k[:i]), binary.BigEndian.Uint64(k[i+1:])
		if s, ver, ok := at(u64(v)); !ok || s != stream || ver != version || u64(v) > indexed {
			add("stream index: %s@%d -> %d (indexed up to %d), which is %s@%d", stream, version, u64(v), indexed, s, ver)
		}
		return nil
	})
	if n != int(min(indexed, last)) {
		add("stream index: %d entries, indexed up to %d", n, indexed)
	}
	n = 0
	_ = tx.Bucket(bktStreams).ForEach(func(k, v []byte) error {
		n++
		if len(v) != 8 || u64(v) != versions[string(k)] {
			add("streams: %s at %x, log says %d", k, v, versions[string(k)])
		}
		return nil
	})
	if n != len(versions) {
		add("streams: %d heads for %d streams", n, len(versions))
	}
	var prevTime, prevPos uint64
	n = 0
	_ = tx.Bucket(bktTime).ForEach(func(k, v []byte) error {
		n++
		if len(k) != 16 {
			add("time index: bad key %x", k)
			return nil
		}
		t, pos := u64(k), u64(k[8:])
		if pos != prevPos+1 || t < prevTime {
			add("time index: position %d at %d after %d at %d", pos, t, prevPos, prevTime)
		}
		prevTime, prevPos = t, pos
		return nil
	})
	if n != int(last) {
		add("time index: %d entries for %d events", n, last)
	}
}
