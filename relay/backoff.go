package relay

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with "equal jitter": each wait is half the current
// step plus a random part of the other half, so retries of many relays spread out but
// never collapse to zero.
type backoff struct {
	min, max time.Duration
	step     time.Duration
}

func (b *backoff) reset() { b.step = 0 }

// next returns the next wait and doubles the step up to max.
func (b *backoff) next() time.Duration {
	if b.step == 0 {
		b.step = b.min
	} else {
		b.step = min(b.step*2, b.max)
	}
	half := b.step / 2
	return half + rand.N(half+1)
}

// wait sleeps the next backoff or until ctx ends; it returns ctx.Err() in that case.
func (b *backoff) wait(ctx context.Context) error {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
