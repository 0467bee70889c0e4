package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// applyLoop applies the stream into the replica in stream order until ctx ends or a
// message cannot be applied (then applyErr is set and appends fail instead of
// hanging). A lost or kicked consumer is created again after the replica's last
// applied sequence.
func (s *Store) applyLoop(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		err := s.consume(ctx)
		var fatal *applyError
		if errors.As(err, &fatal) {
			s.opts.Logger.Error("cluster apply", "err", err)
			s.stop(err)
			return
		}
		if ctx.Err() == nil {
			s.opts.Logger.Debug("cluster consumer restarts", "applied", s.Applied(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	s.stop(store.ErrClosed)
}

// applyError is a message the replica could not take: applying stops for good, as
// skipping it would fork this replica from the others.
type applyError struct{ err error }

func (e *applyError) Error() string { return e.err.Error() }
func (e *applyError) Unwrap() error { return e.err }

// consume runs one ordered consumer from the replica's next sequence until it fails,
// ctx ends or the lease loop kicks it.
func (s *Store) consume(ctx context.Context) error {
	cons, err := s.js.OrderedConsumer(ctx, s.opts.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: s.Applied() + 1})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	// The iterator is stopped on this goroutine only: nats.go's ordered iterator
	// races when Stop runs beside Next. A kick cancels the wait in Next instead.
	defer it.Stop()
	next, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.kick:
			cancel()
		case <-next.Done():
		}
	}()
	for {
		msg, err := it.Next(jetstream.NextContext(next))
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if err := s.apply(ctx, msg); err != nil {
			return &applyError{err}
		}
	}
}

// checkpointEvery bounds the messages a restart replays.
const checkpointEvery = 1024

// apply stores one stream message in the replica and advances applied.
func (s *Store) apply(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("%w: metadata: %v", ErrBadMessage, err)
	}
	seq := meta.Sequence.Stream
	if seq <= s.Applied() {
		return nil // redelivered after the replica had it
	}
	stream, evs, err := DecodeMessage(msg.Subject(), msg.Data())
	if err != nil {
		return fmt.Errorf("sequence %d: %w", seq, err)
	}
	if _, err := s.Store.Append(ctx, stream, store.AnyVersion, evs...); err != nil {
		return fmt.Errorf("sequence %d: replica append: %w", seq, err)
	}
	s.mu.Lock()
	s.track.add(seq, msg.Subject(), msg.Data())
	s.mu.Unlock()
	// The head is saved when the consumer has caught up or every checkpointEvery
	// messages, not per message (that would double the fsyncs of a catch-up): a restart
	// replays the messages after it, which the replica dedupes by event id. Only this
	// goroutine changes the tracker, so it reads it without the lock.
	if meta.NumPending == 0 || seq%checkpointEvery == 0 {
		if err := s.track.save(ctx, s.Store); err != nil {
			return fmt.Errorf("sequence %d: replica head: %w", seq, err)
		}
	}
	s.mu.Lock()
	s.applied = seq
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// stop records why the apply loop ended and wakes every waiter.
func (s *Store) stop(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.applyErr == nil {
		s.applyErr = err
	}
	close(s.notify)
	s.notify = make(chan struct{})
}

// DecodeMessage parses one stream message: its subject names the aggregate stream and
// its body is the JSON array of the Append's envelopes. It returns ErrBadMessage for
// anything else.
func DecodeMessage(subject string, body []byte) (string, []events.Envelope, error) {
	tok, ok := strings.CutPrefix(subject, subjectPrefix)
	if !ok || len(body) > maxMessage {
		return "", nil, ErrBadMessage
	}
	// Strict: one subject per stream name, or a non-canonical subject would escape the
	// compare-and-set of the canonical one.
	name, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil {
		return "", nil, fmt.Errorf("%w: subject: %v", ErrBadMessage, err)
	}
	var evs []events.Envelope
	if err := json.Unmarshal(body, &evs); err != nil {
		return "", nil, fmt.Errorf("%w: body: %v", ErrBadMessage, err)
	}
	if err := store.ValidateAppend(string(name), evs); err != nil {
		return "", nil, errors.Join(ErrBadMessage, err)
	}
	return string(name), evs, nil
}
