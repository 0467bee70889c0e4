package relay

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// followPage is how many events Follow reads from the store per call.
const followPage = 512

// InProcess is the embedded pub/sub: a watermill GoChannel that blocks each Publish
// until every subscriber acknowledged, so subscribers see events in log order and a
// slow subscriber slows the relay instead of losing events. It is live only: events
// published while nobody subscribes are dropped (use Follow for history).
type InProcess struct {
	ps *gochannel.GoChannel
}

// NewInProcess returns an in-process pub/sub. A nil logger logs nothing (GoChannel logs
// every message published without subscribers at Info level).
func NewInProcess(logger watermill.LoggerAdapter) *InProcess {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &InProcess{ps: gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, logger)}
}

// Publisher returns the publisher to give a Relay.
func (p *InProcess) Publisher() message.Publisher { return p.ps }

// PubSub returns the underlying GoChannel, for watermill routers and handlers.
func (p *InProcess) PubSub() *gochannel.GoChannel { return p.ps }

// Close closes the pub/sub: subscriptions end and Publish fails from then on.
func (p *InProcess) Close() error { return p.ps.Close() }

// Subscribe returns the live events that pass f, in log order, without duplicates,
// from the moment of the call. The channel is closed when ctx ends or the pub/sub is
// closed. A message is acknowledged only once the receiver took the event from the
// channel, so the relay waits for this subscriber. Returns the GoChannel's error when
// it is closed.
func (p *InProcess) Subscribe(ctx context.Context, f Filter) (<-chan events.Envelope, error) {
	msgs, err := p.ps.Subscribe(ctx, f.Topic())
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", f.Topic(), err)
	}
	out := make(chan events.Envelope)
	go func() {
		defer close(out)
		_ = consume(ctx, msgs, NewDedupe(0, 0), f, func(e events.Envelope) error {
			select {
			case out <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return out, nil
}

// Follow calls fn for every event after position after that passes f, in log order,
// without duplicates: first the history read from st, then the live events of this
// pub/sub, with no gap between the two (it subscribes before it reads). Live events
// arrive only while a Relay publishes st to this pub/sub. Follow blocks until ctx ends
// or the pub/sub is closed (then it returns nil), fn returns an error (returned as is)
// or the store fails (returned wrapped).
func (p *InProcess) Follow(ctx context.Context, st store.Store, after uint64, f Filter, fn func(events.Envelope) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, err := p.ps.Subscribe(ctx, f.Topic())
	if err != nil {
		return fmt.Errorf("follow %s: %w", f.Topic(), err)
	}
	seen := NewDedupe(0, after)
	for {
		evs, err := st.ReadAll(ctx, seen.Last()+1, followPage)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow: read log: %w", err)
		}
		for _, e := range evs {
			if seen.Fresh(e) && f.Match(e) {
				if err := fn(e); err != nil {
					return err
				}
			}
		}
		if len(evs) < followPage {
			break
		}
	}
	if err := consume(ctx, msgs, seen, f, fn); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// consume hands the events of msgs that are fresh and pass f to fn, acknowledging each
// message after fn returned. It returns fn's error (the message is nacked) or nil when
// msgs is closed. A message that is not an event is acknowledged and dropped.
func consume(ctx context.Context, msgs <-chan *message.Message, seen *Dedupe, f Filter, fn func(events.Envelope) error) error {
	for m := range msgs {
		e, err := DecodeMessage(m)
		if err == nil && seen.Fresh(e) && f.Match(e) {
			if err := fn(e); err != nil {
				m.Nack()
				return err
			}
		}
		m.Ack()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
