package audit

import (
	"container/heap"
	"context"
	"fmt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// mergePage is how many events each stream cursor of an index read holds at a time.
const mergePage = 64

// streamsOf returns the streams that can hold events f selects by owner or server,
// from the store's stream list, and false when f selects by neither (the whole log
// must be scanned). Every event Match accepts is in one of them.
func streamsOf(ctx context.Context, st store.Store, f Filter) ([]string, bool, error) {
	if f.Owner == "" && f.Server == "" {
		return nil, false, nil
	}
	prefixes := []string{""}
	if f.Owner != "" {
		prefixes = domain.OwnerStreamPrefixes(f.Owner)
	}
	var out []string
	for _, p := range prefixes {
		err := st.Streams(ctx, p, func(stream string) error {
			if f.Server == "" || subjectServer(stream) == f.Server {
				out = append(out, stream)
			}
			return nil
		})
		if err != nil {
			return nil, true, fmt.Errorf("list streams %q: %w", p, err)
		}
	}
	return out, true, nil
}

// streamCursor pages through one stream.
type streamCursor struct {
	stream string
	next   uint64 // stream version of the next page
	page   []events.Envelope
	done   bool
}

func (c *streamCursor) fill(ctx context.Context, st store.Store) error {
	if len(c.page) > 0 || c.done {
		return nil
	}
	page, err := st.ReadStream(ctx, c.stream, c.next, mergePage)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.stream, err)
	}
	c.page, c.done = page, len(page) < mergePage
	if len(page) > 0 {
		c.next = page[len(page)-1].StreamVersion + 1
	}
	return nil
}

type cursorHeap []*streamCursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].page[0].Sequence < h[j].page[0].Sequence }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*streamCursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// scanStreams calls fn for every event of streams with position in [from, to], in
// position order: a merge of the streams read through the store's per-stream index,
// holding at most mergePage events of each. It stops at the first error of fn.
func scanStreams(ctx context.Context, st store.Store, streams []string, from, to uint64, fn func(events.Envelope) error) error {
	h := make(cursorHeap, 0, len(streams))
	for _, s := range streams {
		c := &streamCursor{stream: s, next: 1}
		if err := c.fill(ctx, st); err != nil {
			return err
		}
		if len(c.page) > 0 {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := h[0]
		e := c.page[0]
		pos := uint64(e.Sequence)
		if pos > to {
			return nil // every other cursor is further on
		}
		if pos >= from {
			if err := fn(e); err != nil {
				return err
			}
		}
		c.page = c.page[1:]
		if err := c.fill(ctx, st); err != nil {
			return err
		}
		if len(c.page) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return nil
}
