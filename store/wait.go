package store

import "context"

// WaitHead is the loop behind Store.Wait for stores that broadcast each commit by
// closing a channel. snapshot returns, consistently, the current head, the channel
// closed at the next commit (or at close), and whether the store is closed.
// Returns the head as soon as it is past after; ErrClosed (with the head) when the
// store is closed; ctx.Err() (with the head) when ctx ends first.
func WaitHead(ctx context.Context, after uint64, snapshot func() (head uint64, next <-chan struct{}, closed bool)) (uint64, error) {
	for {
		head, next, closed := snapshot()
		if closed {
			return head, ErrClosed
		}
		if head > after {
			return head, nil
		}
		select {
		case <-next:
		case <-ctx.Done():
			return head, ctx.Err()
		}
	}
}
