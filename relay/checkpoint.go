package relay

import (
	"context"
	"sync"
	"time"
)

// finalCheckpointTimeout bounds the checkpoint write at a clean stop.
const finalCheckpointTimeout = 5 * time.Second

// checkpointer writes a relay's checkpoint in the background, one write at a time,
// always the latest acknowledged position (positions set while a write is in flight
// are coalesced into the next one).
type checkpointer struct {
	r     *Relay
	mu    sync.Mutex
	want  uint64
	saved uint64
	wake  chan struct{}
}

func newCheckpointer(r *Relay, pos uint64) *checkpointer {
	return &checkpointer{r: r, want: pos, saved: pos, wake: make(chan struct{}, 1)}
}

// set records that every event up to pos was acknowledged. It does not block.
func (c *checkpointer) set(pos uint64) {
	c.mu.Lock()
	c.want = pos
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run writes checkpoints until ctx ends, then writes the last one with a fresh
// deadline. It returns the store's error only when the store is closed.
func (c *checkpointer) run(ctx context.Context) error {
	bo := backoff{min: c.r.cfg.MinBackoff, max: c.r.cfg.MaxBackoff}
	for {
		select {
		case <-c.wake:
			if err := c.flush(ctx, &bo); err != nil && ctx.Err() == nil {
				return err
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalCheckpointTimeout)
			defer cancel()
			bo := backoff{min: c.r.cfg.MinBackoff, max: c.r.cfg.MaxBackoff}
			return c.flush(fctx, &bo)
		}
	}
}

// flush writes the wanted position if it moved, retrying with backoff until it is
// stored or ctx ends.
func (c *checkpointer) flush(ctx context.Context, bo *backoff) error {
	for {
		c.mu.Lock()
		want, saved := c.want, c.saved
		c.mu.Unlock()
		if want == saved {
			return nil
		}
		err := c.r.cfg.Store.SetCheckpoint(ctx, c.r.cfg.Name, want)
		if err == nil {
			c.mu.Lock()
			c.saved = want
			c.mu.Unlock()
			bo.reset()
			continue
		}
		if err := c.r.retry(ctx, bo, "checkpoint", err); err != nil {
			return err
		}
	}
}
