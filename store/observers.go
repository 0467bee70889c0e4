package store

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mcpes/mcpes/events"
)

// Observers is the observer list a Store keeps, safe for concurrent use. The zero
// value is an empty list.
type Observers struct {
	mu   sync.Mutex
	list []*observed
}

type observed struct {
	fn      Observer
	stopped atomic.Bool
}

// Add registers fn and returns the func that stops it. Stop may be called more than
// once and from inside an observer; once it returns, fn is not called again, except
// by a delivery already running its observers at that moment.
func (o *Observers) Add(fn Observer) (stop func()) {
	if fn == nil {
		panic("store: nil observer")
	}
	e := &observed{fn: fn}
	o.mu.Lock()
	o.list = append(slices.Clip(o.list), e)
	o.mu.Unlock()
	return func() {
		if e.stopped.Swap(true) {
			return
		}
		o.mu.Lock()
		o.list = slices.DeleteFunc(slices.Clone(o.list), func(x *observed) bool { return x == e })
		o.mu.Unlock()
	}
}

// Snapshot returns the observers registered now, for one delivery.
func (o *Observers) Snapshot() Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return Delivery(o.list)
}

// Delivery is the observer list of one commit.
type Delivery []*observed

// Deliver calls every observer of the delivery that has not been stopped, in
// registration order, with committed(); committed is called once per observer, so a
// store may hand each its own copy.
func (d Delivery) Deliver(committed func() []events.Envelope) {
	for _, e := range d {
		if !e.stopped.Load() {
			e.fn(committed())
		}
	}
}
