package relay

import "github.com/mcpes/mcpes/events"

// defaultDedupeSize is how many recent event ids a Dedupe remembers.
const defaultDedupeSize = 4096

// Dedupe drops events a subscriber has already seen. Delivery is at-least-once and
// ordered per topic, so an event whose sequence is not beyond the last one seen is a
// redelivery; a bounded set of recent ids also catches a repeat that the sequence alone
// would not (two subscriptions merged, say). Not safe for concurrent use.
type Dedupe struct {
	last uint64
	ids  map[string]struct{}
	ring []string
	next int
}

// NewDedupe returns a Dedupe that remembers the last size ids (4096 when size <= 0)
// and drops every sequence <= after.
func NewDedupe(size int, after uint64) *Dedupe {
	if size <= 0 {
		size = defaultDedupeSize
	}
	return &Dedupe{last: after, ids: make(map[string]struct{}, size), ring: make([]string, size)}
}

// Fresh records e and reports whether it was not seen before.
func (d *Dedupe) Fresh(e events.Envelope) bool {
	seq := uint64(e.Sequence)
	if seq <= d.last {
		return false
	}
	if _, dup := d.ids[e.ID]; dup {
		return false
	}
	d.last = seq
	if old := d.ring[d.next]; old != "" {
		delete(d.ids, old)
	}
	d.ring[d.next] = e.ID
	d.ids[e.ID] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
	return true
}

// Last returns the highest sequence seen.
func (d *Dedupe) Last() uint64 { return d.last }
