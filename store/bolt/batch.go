package bolt

import (
	"context"
	"fmt"

	"github.com/mcpes/mcpes/store"
)

// AppendBatch implements store.BatchAppender: the appends are committed in their
// order, as few commits as the writer makes of them (usually one), so a replica
// catching up pays one fsync per batch rather than one per append. When one fails,
// those after it fail with the same error and are not stored. It returns the result
// of each, or the first error.
func (s *Store) AppendBatch(ctx context.Context, batch []store.Append) ([]store.AppendResult, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	reqs := make([]*request, len(batch))
	for i, a := range batch {
		if err := store.ValidateAppend(a.Stream, a.Events); err != nil {
			return nil, fmt.Errorf("append %d of the batch: %w", i, err)
		}
		if a.Expected < store.AnyVersion {
			return nil, fmt.Errorf("%w: expected version %d", store.ErrInvalid, a.Expected)
		}
		r := &request{stream: a.Stream, expected: a.Expected, evs: make([]prepared, len(a.Events)), done: make(chan struct{})}
		for j, e := range a.Events {
			p, err := prepare(e)
			if err != nil {
				return nil, err
			}
			r.evs[j] = p
		}
		if i > 0 {
			r.after = reqs[i-1]
		}
		reqs[i] = r
	}
	// Every request is announced before the first is sent, so that the writer waits
	// for the rest to join its batch.
	s.pending.Add(int64(len(reqs)))
	sent := 0
	defer func() { s.pending.Add(-int64(len(reqs) - sent)) }()
	for _, r := range reqs {
		select {
		case s.reqs <- r: // the writer took it and decremented pending
			sent++
		case <-s.closing:
			return s.settle(reqs[:sent], store.ErrClosed)
		case <-ctx.Done():
			return s.settle(reqs[:sent], ctx.Err())
		}
	}
	return s.settle(reqs, nil)
}

// settle waits for the sent requests and returns their results, or err, or the
// first request's error.
func (s *Store) settle(reqs []*request, err error) ([]store.AppendResult, error) {
	out := make([]store.AppendResult, len(reqs))
	for i, r := range reqs {
		<-r.done // once taken, the outcome is decided by the commit
		out[i] = r.res
		if err == nil {
			err = r.err
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
