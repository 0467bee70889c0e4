package connections

import (
	"math/rand/v2"
	"time"
)

func randFloat() float64 { return rand.Float64() }

// breaker is the circuit breaker of one (owner, server): after threshold consecutive
// failed connects it opens for a backoff period that doubles with every further
// failure (bounded, jittered). While it is open, Gets are refused with rule
// breaker_open without touching the upstream; when the period is over, the next Get
// makes one attempt (half-open) that every concurrent Get shares. A success closes it.
// Guarded by its entry's mutex.
type breaker struct {
	failures  int
	openUntil time.Time
}

// isOpen reports whether the breaker refuses connects at now.
func (b *breaker) isOpen(now time.Time) bool { return now.Before(b.openUntil) }

// failure records a failed connect at now and returns the number of consecutive
// failures (the attempt number of the failed connect).
func (b *breaker) failure(now time.Time, o *Options) int {
	b.failures++
	if n := b.failures - o.BreakerThreshold; n >= 0 {
		b.openUntil = now.Add(backoff(n, o))
	}
	return b.failures
}

// success closes the breaker.
func (b *breaker) success() { *b = breaker{} }

// backoff is the n-th (0-based) open period: BackoffBase·2ⁿ capped at BackoffMax, then
// "equal jitter" so that a period never shrinks below half its nominal length.
func backoff(n int, o *Options) time.Duration {
	d := o.BackoffBase
	for i := 0; i < n && d < o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, o.BackoffMax)
	half := d / 2
	return half + time.Duration(o.Jitter()*float64(d-half))
}
