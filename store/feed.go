package store

import "context"

// feedChunk is how many records Verify hands to a WithRecords consumer at once.
const feedChunk = 512

type feedItem struct {
	pos        uint64
	start, end int
}

// chunk is records copied out of the store's read transaction into one buffer.
type chunk struct {
	arena []byte
	items []feedItem
}

// feeder hands copies of records to fn on its own goroutine, in order, through a
// fixed set of reused chunks: memory is bounded by the chunks, not by the log.
type feeder struct {
	fn   func(pos uint64, canonical []byte)
	full chan *chunk
	free chan *chunk
	cur  *chunk
	done chan struct{}
}

func newFeeder(fn func(pos uint64, canonical []byte)) *feeder {
	f := &feeder{fn: fn, full: make(chan *chunk, 4), free: make(chan *chunk, 6), done: make(chan struct{})}
	for range cap(f.free) {
		f.free <- &chunk{} // buffers grow on first use
	}
	f.cur = <-f.free
	go func() {
		defer close(f.done)
		for c := range f.full {
			for _, it := range c.items {
				f.fn(it.pos, c.arena[it.start:it.end])
			}
			c.arena, c.items = c.arena[:0], c.items[:0]
			f.free <- c
		}
	}()
	return f
}

// add copies one record's canonical bytes; it blocks while the consumer is behind,
// until ctx ends.
func (f *feeder) add(ctx context.Context, pos uint64, canonical []byte) error {
	start := len(f.cur.arena)
	f.cur.arena = append(f.cur.arena, canonical...)
	f.cur.items = append(f.cur.items, feedItem{pos: pos, start: start, end: len(f.cur.arena)})
	if len(f.cur.items) < feedChunk {
		return nil
	}
	select {
	case f.full <- f.cur:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.cur = <-f.free // the consumer returns every chunk it takes
	return nil
}

// close hands over what is left and waits until fn has seen every record added.
func (f *feeder) close() {
	if len(f.cur.items) > 0 {
		f.full <- f.cur
	}
	close(f.full)
	<-f.done
}
