package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/events"
)

// Consumer settings of FollowNATS.
const (
	followAckWait      = 30 * time.Second
	followMaxPending   = 1024
	followPull         = 256
	followInactive     = 5 * time.Minute
	followMaxBackoff   = 2 * time.Second
	followAPITimeout   = 5 * time.Second
	followRetryMinimum = 100 * time.Millisecond
)

// ValidDurable reports whether name can be a JetStream durable consumer name.
func ValidDurable(name string) bool {
	return name != "" && !strings.ContainsAny(name, ".*> \t\r\n/\\")
}

// FollowNATS consumes the events that pass f from NATS JetStream at url and calls out
// for each, in log order, without gaps and without the duplicates at-least-once
// delivery brings (deduped by event id and by sequence). It reads the narrowest topic
// for f (Filter.Topic). It prints and logs nothing.
//
// With a durable name, a durable consumer of that name keeps the position on the
// server, so a later FollowNATS with the same name resumes after the last event out
// accepted (events out was given but the server did not record as acknowledged are
// given again). Without one, an ephemeral consumer starts at the stream's first
// message. One durable name is for one follower at a time.
//
// A lost connection or a NATS server restart is survived: the consumer is reopened
// with backoff and any message the server skipped is fetched by its stream sequence.
// FollowNATS returns nil when ctx ends, out's error as is when out fails (that event is
// not acknowledged), ErrInvalidConfig (wrapped) for a bad durable name, and the
// connection error, or jetstream.ErrStreamNotFound (wrapped) when no relay has created
// the stream yet, or the server's error when it refuses the consumer (HTTP-style code
// 400, e.g. a durable name already used with another configuration).
func FollowNATS(ctx context.Context, url, durable string, f Filter, out func(events.Envelope) error) error {
	if durable != "" && !ValidDurable(durable) {
		return fmt.Errorf("%w: durable name %q (no dots, spaces, slashes or wildcards)", ErrInvalidConfig, durable)
	}
	nc, err := connectNATS(url, "mcpes-follow", nil)
	if err != nil {
		return err
	}
	defer func() {
		_ = nc.FlushTimeout(time.Second) // send the last acknowledgements
		nc.Close()
	}()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(followAPITimeout))
	if err != nil {
		return fmt.Errorf("jetstream %s: %w", url, err)
	}
	fl := &follower{js: js, topic: f.Topic(), durable: durable, filter: f, out: out, seen: NewDedupe(0, 0)}
	stream, err := js.Stream(ctx, fl.topic)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("follow %s: %w", fl.topic, err)
	}
	fl.stream = stream
	err = fl.run(ctx)
	if fl.ephemeral != "" {
		// Tidy up now rather than after the inactivity threshold.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = stream.DeleteConsumer(dctx, fl.ephemeral)
		cancel()
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// follower is one FollowNATS loop. last is the stream sequence up to which every
// message was handed to out (or filtered out).
type follower struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	topic   string
	durable string
	filter  Filter
	out     func(events.Envelope) error
	seen    *Dedupe
	last    uint64
	started bool
	// ephemeral is the server-assigned name of the current ephemeral consumer.
	ephemeral string
}

// errOut marks an error of the caller's out function, which stops the loop.
type errOut struct{ err error }

func (e errOut) Error() string { return e.err.Error() }
func (e errOut) Unwrap() error { return e.err }

func (fl *follower) run(ctx context.Context) error {
	bo := backoff{min: followRetryMinimum, max: followMaxBackoff}
	for ctx.Err() == nil {
		before := fl.last
		err := fl.consume(ctx)
		var oe errOut
		if errors.As(err, &oe) {
			return oe.err
		}
		// A refused consumer (say, a durable name in use with another config) does not
		// heal by waiting; lost connections and restarts do.
		var api *jetstream.APIError
		if errors.As(err, &api) && api.Code == 400 {
			return err
		}
		if fl.last > before {
			bo.reset()
		}
		if err := bo.wait(ctx); err != nil {
			return nil
		}
	}
	return nil
}

// consume opens the consumer and reads it until an error.
func (fl *follower) consume(ctx context.Context) error {
	cons, err := fl.open(ctx)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(followPull))
	if err != nil {
		return fmt.Errorf("follow %s: %w", fl.topic, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("follow %s: %w", fl.topic, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Ack()
			continue
		}
		seq := md.Sequence.Stream
		if seq <= fl.last {
			_ = msg.Ack()
			continue
		}
		// The server delivers past a message that was lost in flight (a restart) or
		// that is still pending from an earlier run; fetch it now to keep the order.
		for s := fl.last + 1; s < seq; s++ {
			raw, err := fl.stream.GetMsg(ctx, s)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				fl.last = s // removed by the stream's limits
				continue
			}
			if err != nil {
				return fmt.Errorf("follow %s: fetch %d: %w", fl.topic, s, err)
			}
			if err := fl.handle(raw.Data); err != nil {
				return err
			}
			fl.last = s
		}
		if err := fl.handle(msg.Data()); err != nil {
			_ = msg.Nak()
			return err
		}
		fl.last = seq
		_ = msg.Ack()
	}
}

// handle decodes one payload and hands it to out when it is fresh and passes the
// filter. A payload that is not an event is skipped.
func (fl *follower) handle(data []byte) error {
	var e events.Envelope
	if err := json.Unmarshal(data, &e); err != nil || e.ID == "" || e.Sequence == 0 {
		return nil
	}
	if !fl.seen.Fresh(e) || !fl.filter.Match(e) {
		return nil
	}
	if err := fl.out(e); err != nil {
		return errOut{err}
	}
	return nil
}

// open creates (or finds) the consumer. The first time, it sets last from the server:
// the durable's acknowledgement floor, or the stream's first sequence - 1. A reopened
// ephemeral consumer starts after last.
func (fl *follower) open(ctx context.Context) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       fl.durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       followAckWait,
		MaxAckPending: followMaxPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if fl.durable == "" {
		cfg.InactiveThreshold = followInactive
		if fl.started {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, fl.last+1
		}
	}
	var (
		cons jetstream.Consumer
		err  error
	)
	if fl.durable != "" {
		cons, err = fl.stream.CreateOrUpdateConsumer(ctx, cfg)
	} else {
		if fl.ephemeral != "" {
			_ = fl.stream.DeleteConsumer(ctx, fl.ephemeral)
			fl.ephemeral = ""
		}
		cons, err = fl.stream.CreateConsumer(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("follow %s: consumer: %w", fl.topic, err)
	}
	if fl.durable == "" {
		fl.ephemeral = cons.CachedInfo().Name
	}
	if !fl.started {
		info, err := fl.stream.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("follow %s: stream info: %w", fl.topic, err)
		}
		if info.State.FirstSeq > 0 {
			fl.last = info.State.FirstSeq - 1
		}
		if fl.durable != "" {
			ci, err := cons.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("follow %s: consumer info: %w", fl.topic, err)
			}
			fl.last = max(fl.last, ci.AckFloor.Stream)
		}
		fl.started = true
	}
	return cons, nil
}
