package bolt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// prepared is an envelope encoded once, in the caller's goroutine, with placeholder
// seal fields. The writer only splices in sequence, stream version and prevhash and
// hashes, so the serial part of an append does no JSON work.
type prepared struct {
	env    events.Envelope // Data is the compacted JSON as stored
	prefix []byte          // canonical JSON up to "sequence"
	middle []byte          // from "actor" up to "prevhash"
	suffix []byte          // from "data" to the end
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

var (
	seqPlaceholder  = []byte(`"sequence":"00000000000000000000","streamversion":0,`)
	prevPlaceholder = []byte(`"prevhash":"` + zeroHex + `",`)
	dataPrefix      = []byte(`"data":`)
	// The placeholders as prepare looks for them, after the preceding field's comma.
	seqField  = append([]byte{','}, seqPlaceholder...)
	prevField = append([]byte{','}, prevPlaceholder...)
)

// prepare encodes e with placeholder seal fields and splits the JSON around them.
// The fields follow the struct order of events.Envelope, and every field before
// "data" is a JSON string or number, so the first `,"sequence":` and `,"prevhash":`
// cannot be inside a value.
func prepare(e events.Envelope) (prepared, error) {
	e.Time = e.Time.UTC()
	e.Sequence, e.StreamVersion, e.PrevHash, e.Hash = 0, 0, zeroHex, ""
	canon, err := e.Canonical()
	if err != nil {
		return prepared{}, fmt.Errorf("%w: %v", store.ErrInvalid, err)
	}
	i := bytes.Index(canon, seqField)
	if i < 0 {
		return prepared{}, fmt.Errorf("encode %s: sequence field not found", e.ID)
	}
	p := prepared{prefix: canon[:i+1]}
	rest := canon[i+1+len(seqPlaceholder):]
	j := bytes.Index(rest, prevField)
	if j < 0 {
		return prepared{}, fmt.Errorf("encode %s: prevhash field not found", e.ID)
	}
	p.middle, p.suffix = rest[:j+1], rest[j+1+len(prevPlaceholder):]
	if !bytes.HasPrefix(p.suffix, dataPrefix) || p.suffix[len(p.suffix)-1] != '}' {
		return prepared{}, fmt.Errorf("encode %s: data field not last", e.ID)
	}
	e.Data = p.suffix[len(dataPrefix) : len(p.suffix)-1]
	e.PrevHash = ""
	p.env = e
	return p, nil
}

// appendRecord writes the record of p sealed at (seq, version, prev) to dst and
// returns dst, the record and its hash.
func (p *prepared) appendRecord(dst []byte, seq, version uint64, prev [32]byte) ([]byte, []byte, [32]byte) {
	start := len(dst)
	dst = append(dst, 1) // events.EncodeRecord's format byte
	dst = append(dst, events.ZeroHash[:]...)
	canonStart := len(dst)
	dst = append(dst, p.prefix...)
	dst = append(dst, `"sequence":"`...)
	var num [20]byte
	n := strconv.AppendUint(num[:0], seq, 10)
	for range 20 - len(n) {
		dst = append(dst, '0')
	}
	dst = append(dst, n...)
	dst = append(dst, `","streamversion":`...)
	dst = strconv.AppendUint(dst, version, 10)
	dst = append(dst, ',')
	dst = append(dst, p.middle...)
	dst = append(dst, `"prevhash":"`...)
	dst = hex.AppendEncode(dst, prev[:])
	dst = append(dst, `",`...)
	dst = append(dst, p.suffix...)
	h := sha256.New()
	h.Write(prev[:])
	h.Write(dst[canonStart:])
	var sum [32]byte
	h.Sum(sum[:0])
	copy(dst[start+1:], sum[:])
	return dst, dst[start:], sum
}

type request struct {
	stream   string
	expected int64
	evs      []prepared
	res      store.AppendResult
	err      error
	done     chan struct{}
	// after is the request of the same AppendBatch before this one: when it failed,
	// this one fails too, so a batch never stores a later append without an earlier.
	after *request
}

// Append implements store.Store. The envelopes are encoded in the caller's goroutine,
// then committed by the writer together with other pending appends; Append returns
// after the transaction holding them is fsync'd and observers have run. When every
// envelope is already stored (a retry) it succeeds without a version check. Returns
// ErrInvalid for bad arguments, *store.ConflictError when the stream moved (nothing is
// stored), ErrReadOnly, ErrClosed, or the commit's error.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (store.AppendResult, error) {
	if s.closed.Load() {
		return store.AppendResult{}, store.ErrClosed
	}
	if s.opts.ReadOnly {
		return store.AppendResult{}, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return store.AppendResult{}, err
	}
	if err := store.ValidateAppend(stream, evs); err != nil {
		return store.AppendResult{}, err
	}
	if expected < store.AnyVersion {
		return store.AppendResult{}, fmt.Errorf("%w: expected version %d", store.ErrInvalid, expected)
	}
	// Announce the request before encoding it, so that a writer about to commit waits
	// for it to join the batch instead of committing without it.
	s.pending.Add(1)
	r := &request{stream: stream, expected: expected, evs: make([]prepared, len(evs)), done: make(chan struct{})}
	for i, e := range evs {
		p, err := prepare(e)
		if err != nil {
			s.pending.Add(-1)
			return store.AppendResult{}, err
		}
		r.evs[i] = p
	}
	select {
	case s.reqs <- r: // the writer took it and decremented pending
	case <-s.closing:
		s.pending.Add(-1)
		return store.AppendResult{}, store.ErrClosed
	case <-ctx.Done():
		s.pending.Add(-1)
		return store.AppendResult{}, ctx.Err()
	}
	<-r.done // once taken, the outcome is decided by the commit; ctx no longer applies
	return r.res, r.err
}

// maxLinger bounds how long the writer waits for announced requests to join a batch.
const maxLinger = time.Millisecond

// writer is the single goroutine that commits appends.
func (s *Store) writer() {
	defer close(s.writerEnd)
	batch := make([]*request, 0, 64)
	var lastReqs int             // callers likely to come back: recent batch sizes
	var lastCommit time.Duration // how long the last commit took
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.closing:
			return
		}
		s.pending.Add(-1)
		batch = append(batch[:0], first)
		n := len(first.evs)
		// Take what is pending. As a commit costs an fsync pair whatever its size, wait
		// a little (at most maxLinger, or half a commit) for callers that announced a
		// request and are still encoding it, and for as many callers as the last batch
		// had, which closed-loop appenders bring back at once. A lone appender never
		// waits.
		lingering := false
	collect:
		for n < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				s.pending.Add(-1)
				batch = append(batch, r)
				n += len(r.evs)
				continue
			default:
			}
			if s.pending.Load() <= 0 && len(batch) >= lastReqs {
				break
			}
			if !lingering {
				lingering = true
				linger.Reset(min(maxLinger, lastCommit/2))
			}
			select {
			case r := <-s.reqs:
				s.pending.Add(-1)
				batch = append(batch, r)
				n += len(r.evs)
			case <-linger.C:
				lingering = false
				break collect
			}
		}
		if lingering {
			linger.Stop()
		}
		// Expect as many callers as the larger of this batch and a decaying memory of
		// earlier ones, so that two half-size batches merge into one.
		lastReqs = max(len(batch), lastReqs*7/8)
		start := time.Now()
		s.commit(batch)
		lastCommit = time.Since(start)
		clear(batch)
	}
}

// errNothingToCommit rolls back a transaction in which every request was a
// duplicate or a conflict.
var errNothingToCommit = errors.New("nothing to commit")

// maxArena is the largest scratch buffer the writer keeps between batches.
const maxArena = 4 << 20

// batchState is what one commit has written so far, on top of the file.
type batchState struct {
	pos      uint64
	prev     [32]byte
	tmax     int64
	versions map[string]uint64
	ids      map[string]uint64
	sealed   []events.Envelope // PrevHash and Hash are filled in by hexHashes
	start    [32]byte          // the hash before the batch
	sums     [][32]byte        // the hash of each sealed event
	tree     *store.Tree       // the head's tree with the batch's leaves
	entries  []stagedEntry     // stream index entries of the batch
	flushed  bool              // the batch wrote the stream index up to pos
	idsTop   string            // the greatest id the batch stored
}

// hexHashes sets PrevHash and Hash of the sealed envelopes.
func (st *batchState) hexHashes() {
	prev := st.start
	for i := range st.sealed {
		st.sealed[i].PrevHash, st.sealed[i].Hash = hex.EncodeToString(prev[:]), hex.EncodeToString(st.sums[i][:])
		prev = st.sums[i]
	}
}

// commit writes the batch in one transaction. A request that conflicts fails alone;
// the others commit. After the commit the batch goes to the observers; once they have
// seen it, waiters wake and callers return.
func (s *Store) commit(batch []*request) {
	n := 0
	for _, r := range batch {
		n += len(r.evs)
	}
	s.mu.RLock()
	// Sized for the batch, so that the writer does not grow them event by event.
	st := batchState{pos: s.head, prev: s.headHash, start: s.headHash, tmax: s.timeMax, tree: s.tree.Clone(),
		versions: make(map[string]uint64, len(batch)), ids: make(map[string]uint64, n),
		sealed: make([]events.Envelope, 0, n), sums: make([][32]byte, 0, n), entries: make([]stagedEntry, 0, n)}
	s.mu.RUnlock()
	arena := s.arena[:0]
	// A damaged page fails the batch rather than the process (see guarded).
	err := guarded(s.path, func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b := buckets(tx)
			for _, r := range batch {
				var err error
				arena, err = s.apply(b, &st, r, arena)
				if err != nil {
					return err
				}
			}
			if len(st.sealed) == 0 {
				return errNothingToCommit // retries and conflicts only: spare the fsync
			}
			if len(s.recent.times)+len(st.entries) >= s.opts.IndexEvery {
				var err error
				if arena, err = s.flushIndex(b, &st, arena); err != nil {
					return err
				}
			}
			tb, _ := st.tree.MarshalBinary()
			if err := b.meta.Put(keyTree, tb); err != nil {
				return err
			}
			return b.meta.Put(keyHead, encodeHead(st.pos, st.prev, st.tmax))
		})
	})
	if cap(arena) <= maxArena { // keep the scratch space, unless one huge batch grew it
		s.arena = arena[:0]
	} else {
		s.arena = nil
	}
	if errors.Is(err, errNothingToCommit) {
		err = nil
	}
	if err != nil {
		err = fmt.Errorf("commit: %w", mapErr(err))
		s.opts.Logger.Error("event store commit failed", "path", s.path, "requests", len(batch), "err", err)
		for _, r := range batch {
			if r.err == nil {
				r.res, r.err = store.AppendResult{}, err
			}
			close(r.done)
		}
		return
	}
	if len(st.sealed) == 0 {
		// Nothing new, but a conflict's caller will read the projections next: release
		// it once the observers have seen the commits before, which it conflicted with.
		reqs := slices.Clone(batch)
		s.observers.Barrier(st.pos, func() {
			for _, r := range reqs {
				close(r.done)
			}
		})
		return
	}
	var wake chan struct{}
	s.mu.Lock()
	s.head, s.headHash, s.timeMax, s.tree = st.pos, st.prev, st.tmax, st.tree
	s.idsTop = max(s.idsTop, st.idsTop)
	s.publishIndex(&st)
	wake, s.notify = s.notify, make(chan struct{})
	s.commits++
	s.appended += uint64(len(st.sealed))
	s.mu.Unlock()
	// The observers run on their own goroutines while this one commits the next
	// batch; the callers return once they have seen this one.
	reqs := slices.Clone(batch)
	first := uint64(st.sealed[0].Sequence)
	var hexOnce sync.Once
	s.observers.Publish(first, st.pos, func() []events.Envelope {
		hexOnce.Do(st.hexHashes) // on an observer's goroutine, not the writer's
		return st.sealed
	}, func() {
		close(wake)
		for _, r := range reqs {
			close(r.done)
		}
	})
}

type bucketSet struct {
	log, stream, streams, ids, time, meta *bolt.Bucket
}

func buckets(tx *bolt.Tx) bucketSet {
	b := bucketSet{log: tx.Bucket(bktLog), stream: tx.Bucket(bktStream), streams: tx.Bucket(bktStreams),
		ids: tx.Bucket(bktIDs), time: tx.Bucket(bktTime), meta: tx.Bucket(bktMeta)}
	b.log.FillPercent, b.time.FillPercent, b.ids.FillPercent = 1.0, 1.0, 1.0
	return b
}

// apply checks one request against the file and the batch so far and, unless it
// conflicts, writes its events. A conflict is the request's own outcome (r.err), not
// an error of the transaction; the returned error aborts the whole batch.
func (s *Store) apply(b bucketSet, st *batchState, r *request, arena []byte) ([]byte, error) {
	if r.after != nil && r.after.err != nil {
		r.err = r.after.err
		return arena, nil
	}
	const (
		fresh  = iota // appended by this request
		stored        // already in the file or earlier in the batch
		repeat        // the same id earlier in this request
	)
	n := len(r.evs)
	r.res.Positions = make([]uint64, n)
	kind := make([]uint8, n)
	var first map[string]int
	nfresh := 0
	for i := range r.evs {
		id := r.evs[i].env.ID
		if pos, ok := st.ids[id]; ok {
			r.res.Positions[i], kind[i] = pos, stored
			continue
		}
		// An id after every stored id (a new UUIDv7 mostly is) is not stored; one
		// after every key of the ids bucket is not in the bucket.
		if id <= s.idsTop {
			if pos, ok := s.recent.ids[id]; ok {
				r.res.Positions[i], kind[i] = pos, stored
				continue
			}
			if id <= s.idsMax {
				if v := b.ids.Get([]byte(id)); v != nil {
					r.res.Positions[i], kind[i] = u64(v), stored
					continue
				}
			}
		}
		if n > 1 {
			if first == nil {
				first = make(map[string]int, n)
			}
			if _, ok := first[id]; ok {
				kind[i] = repeat
				continue
			}
			first[id] = i
		}
		nfresh++
	}
	version, known := st.versions[r.stream]
	if !known {
		version, known = s.recent.version(r.stream)
	}
	if !known {
		if v := b.streams.Get([]byte(r.stream)); v != nil {
			version = u64(v)
		}
	}
	if nfresh > 0 && r.expected != store.AnyVersion && uint64(r.expected) != version {
		r.res, r.err = store.AppendResult{}, &store.ConflictError{Stream: r.stream, Expected: r.expected, Actual: version}
		return arena, nil
	}
	r.res.Duplicates = n - nfresh
	r.res.StreamVersion = version
	if nfresh == 0 {
		return arena, nil
	}
	for i := range r.evs {
		if kind[i] != fresh {
			continue
		}
		p := &r.evs[i]
		st.pos++
		version++
		var rec []byte
		var sum [32]byte
		// Keys and values live in the arena until the commit; when it grows, slices
		// cut before keep pointing at the old, unchanged bytes.
		arena, rec, sum = p.appendRecord(arena, st.pos, version, st.prev)
		pk := len(arena)
		arena = binary.BigEndian.AppendUint64(arena, st.pos)
		if err := b.log.Put(arena[pk:len(arena):len(arena)], rec); err != nil {
			return arena, err
		}
		if t := p.env.Time.UnixNano(); st.pos == 1 || t > st.tmax {
			st.tmax = t
		}
		env := p.env
		env.Sequence, env.StreamVersion = events.Sequence(st.pos), version
		st.sealed = append(st.sealed, env)
		st.sums = append(st.sums, sum)
		st.ids[env.ID] = st.pos
		st.idsTop = max(st.idsTop, env.ID)
		st.entries = append(st.entries, stagedEntry{stream: r.stream, id: env.ID, tmax: st.tmax, streamEntry: streamEntry{version, st.pos}})
		st.prev = sum
		st.tree.Append(sum)
		r.res.Positions[i] = st.pos
	}
	for i := range r.evs {
		if kind[i] == repeat {
			r.res.Positions[i] = r.res.Positions[first[r.evs[i].env.ID]]
		}
	}
	st.versions[r.stream] = version
	r.res.StreamVersion = version
	return arena, nil
}
