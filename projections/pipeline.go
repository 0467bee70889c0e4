package projections

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// chunkSize is how many records the hashing goroutine hands over at once.
const chunkSize = 512

type chunkItem struct {
	pos        uint64
	hash       [32]byte
	start, end int
}

type chunk struct {
	arena []byte
	items []chunkItem
}

var errStopScan = errors.New("stop scan")

// scanChecked reads the log from position from on (up to until; 0 = the head),
// checks that every record chains to the one before (the first to prev), and calls fn
// with each record's position, hash and canonical bytes, in order. Hashing runs on the
// reading goroutine and fn on another, so the two overlap on a multi-core machine.
// canonical is valid only during fn. Returns the first error of the store, of the
// chain (wrapping events.ErrCorrupt) or of fn.
func scanChecked(ctx context.Context, st store.Store, from uint64, prev [32]byte, until uint64,
	fn func(pos uint64, hash [32]byte, canonical []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan *chunk, 4)
	free := make(chan *chunk, 6)
	for range cap(free) {
		free <- &chunk{} // buffers grow on first use: a short tail allocates little
	}
	foldErr := make(chan error, 1)
	go func() {
		var err error
		for c := range full {
			if err == nil {
				for _, it := range c.items {
					if err = fn(it.pos, it.hash, c.arena[it.start:it.end]); err != nil {
						cancel() // stop the reader; keep draining so it never blocks
						break
					}
				}
			}
			c.arena, c.items = c.arena[:0], c.items[:0]
			free <- c
		}
		foldErr <- err
	}()

	cur := <-free
	link := newLinker()
	from = max(from, 1)
	last := from - 1
	readErr := st.ReadRecords(ctx, from, func(pos uint64, rec []byte) error {
		if until > 0 && pos > until {
			return errStopScan
		}
		if pos != last+1 {
			return fmt.Errorf("%w: record %d follows %d", events.ErrCorrupt, pos, last)
		}
		hash, err := link.check(prev, rec)
		if err != nil {
			return fmt.Errorf("position %d: %w", pos, err)
		}
		start := len(cur.arena)
		cur.arena = append(cur.arena, rec[1+32:]...)
		cur.items = append(cur.items, chunkItem{pos: pos, hash: hash, start: start, end: len(cur.arena)})
		prev, last = hash, pos
		if len(cur.items) == chunkSize {
			select {
			case full <- cur:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case cur = <-free:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	if len(cur.items) > 0 && ctx.Err() == nil {
		full <- cur
	}
	close(full)
	ferr := <-foldErr
	switch {
	case ferr != nil:
		return ferr
	case readErr != nil && !errors.Is(readErr, errStopScan):
		return readErr
	}
	return nil
}

// recordFolder scans chain-checked records and folds them into projections, reusing
// one event and a subject cache across a scan.
type recordFolder struct {
	ev       rawEvent
	subjects map[string]string
	fs       []*follower
}

func newRecordFolder(fs ...*follower) *recordFolder {
	return &recordFolder{subjects: map[string]string{}, fs: fs}
}

// fold scans one record's canonical bytes and folds the event into every projection.
func (r *recordFolder) fold(pos uint64, hash [32]byte, canonical []byte) error {
	r.ev = rawEvent{}
	ev := &r.ev
	if err := scanEnvelope(canonical, ev, r.subjects); err != nil {
		return fmt.Errorf("position %d: %w", pos, err)
	}
	if ev.pos != pos {
		return fmt.Errorf("%w: record at %d says sequence %d", events.ErrCorrupt, pos, ev.pos)
	}
	for _, f := range r.fs {
		if err := f.foldChecked(ev, hash); err != nil {
			return fmt.Errorf("position %d: %w", pos, err)
		}
	}
	return nil
}

// linker is events.CheckRecord with one reused hasher, so a long scan does not
// allocate a digest per record.
type linker struct {
	h    hash.Hash
	sum  []byte
	prev [32]byte // a field, so writing it to the hasher does not allocate
}

func newLinker() *linker { return &linker{h: sha256.New(), sum: make([]byte, 0, sha256.Size)} }

// check returns the record's hash when it chains to prev: SHA-256(prev || canonical)
// equals the stored hash. Otherwise it returns an error wrapping events.ErrCorrupt.
func (l *linker) check(prev [32]byte, rec []byte) ([32]byte, error) {
	stored, canon, err := events.SplitRecord(rec)
	if err != nil {
		return stored, err
	}
	l.prev = prev
	l.h.Reset()
	l.h.Write(l.prev[:])
	l.h.Write(canon)
	l.sum = l.h.Sum(l.sum[:0])
	if [32]byte(l.sum) != stored {
		return stored, fmt.Errorf("%w: hash does not match content and previous hash", events.ErrCorrupt)
	}
	return stored, nil
}
