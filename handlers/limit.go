package handlers

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per owner over the API and /mcp: an owner's requests
// beyond its rate (after a burst) are refused with 429 and Retry-After, so no owner
// can tire the service or grow the log faster than its limit. The admin (the
// operator, and every loopback caller when no token is configured) is not limited.
// Owners are authenticated identities, so the number of buckets is bounded by the
// configured tokens.
type Limiter struct {
	rate  rate.Limit
	burst int
	clock func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter

	requests *prometheus.CounterVec
}

// NewLimiter returns a limiter allowing perSecond requests a second with the given
// burst to each owner; clock is nil for time.Now. Returns an error for a rate or
// burst below 1.
func NewLimiter(perSecond float64, burst int, clock func() time.Time) (*Limiter, error) {
	if perSecond <= 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0) || burst < 1 {
		return nil, fmt.Errorf("limits.owner: want rate > 0 and burst ≥ 1, got rate %v burst %d", perSecond, burst)
	}
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{rate: rate.Limit(perSecond), burst: burst, clock: clock, buckets: map[string]*rate.Limiter{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mcpes_owner_requests_total",
			Help: "API and /mcp requests by owner, allowed or limited (429)."}, []string{"owner", "result"})}, nil
}

// Collector returns the per-owner request counters for a Prometheus registry.
func (l *Limiter) Collector() prometheus.Collector { return l.requests }

// Allow takes a token of id's bucket. It returns nil, or an error wrapping
// ErrRateLimited and the wait until the next token.
func (l *Limiter) Allow(id Identity) (time.Duration, error) {
	if l == nil || id.Admin {
		return 0, nil
	}
	now := l.clock()
	l.mu.Lock()
	b, ok := l.buckets[id.Owner]
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[id.Owner] = b
	}
	res := b.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	if wait > 0 {
		res.CancelAt(now)
	}
	l.mu.Unlock()
	if wait > 0 {
		l.requests.WithLabelValues(id.Owner, "limited").Inc()
		return wait, fmt.Errorf("%w: owner %s is over limits.owner (%v requests a second, burst %d); retry in %v",
			ErrRateLimited, id.Owner, float64(l.rate), l.burst, wait.Round(time.Millisecond))
	}
	l.requests.WithLabelValues(id.Owner, "allowed").Inc()
	return 0, nil
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least 1.
func retryAfter(wait time.Duration) string {
	return fmt.Sprint(max(1, int(math.Ceil(wait.Seconds()))))
}
