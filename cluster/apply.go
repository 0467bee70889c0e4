package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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

// errKicked ends a consume the lease loop found behind the stream head.
var errKicked = errors.New("consumer restarted: the replica is behind a live quorum's head")

// consume creates an ephemeral pull consumer from the replica's next sequence and
// applies what it delivers until it fails, a delivery is missing (lost in a
// partition), ctx ends or the lease loop kicks it. Every call into nats is bounded (a
// wait for the next message lasts at most fetchWait), so a healed partition or a kick
// is acted on within about that long. (nats.go's ordered consumer was used before: it
// retries a lost consumer inside Next for up to ten seconds a try, and a healed node
// then sat idle for eight seconds before applying anything.)
func (s *Store) consume(ctx context.Context) error {
	// A short bound: a request lost while partitioned is asked again soon after the
	// partition heals.
	cctx, cancel := context.WithTimeout(ctx, 2*fetchWait)
	cons, err := s.stream.CreateOrUpdateConsumer(cctx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: s.Applied() + 1,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true, Replicas: 1})
	cancel()
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.stream.DeleteConsumer(dctx, cons.CachedInfo().Name) // else it expires
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * applyBatch))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	// Messages already waiting (NumPending > 0: a catch-up) are applied together, in
	// one replica commit per batch; a message with nothing behind it is applied at once.
	var batch []jetstream.Msg
	var delivered uint64 // the consumer's last delivery sequence
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.kick:
			return errKicked
		default:
		}
		msg, err := it.Next(jetstream.NextMaxWait(fetchWait))
		if errors.Is(err, nats.ErrTimeout) {
			if err := s.apply(ctx, batch); err != nil { // what a stalled catch-up holds
				return &applyError{err}
			}
			batch = batch[:0]
			continue // nothing new: look at ctx and the kick again
		}
		if err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return &applyError{fmt.Errorf("%w: metadata: %v", ErrBadMessage, err)}
		}
		if meta.Sequence.Consumer != delivered+1 {
			if err := s.apply(ctx, batch); err != nil {
				return &applyError{err}
			}
			return fmt.Errorf("delivery %d after %d: a delivery was lost", meta.Sequence.Consumer, delivered)
		}
		delivered = meta.Sequence.Consumer
		batch = append(batch, msg)
		if meta.NumPending > 0 && len(batch) < applyBatch {
			continue
		}
		if err := s.apply(ctx, batch); err != nil {
			return &applyError{err}
		}
		batch = batch[:0]
	}
}

// fetchWait bounds one wait for a message: how long a caught-up node waits before it
// looks at ctx and the lease's kick again.
const fetchWait = time.Second

const (
	// applyBatch bounds the messages applied in one replica commit.
	applyBatch = 256
	// checkpointEvery bounds the messages a restart replays.
	checkpointEvery = 1024
)

// message is one decoded stream message.
type message struct {
	seq, pending uint64
	subject      string
	data         []byte
	stream       string
	evs          []events.Envelope
}

// apply stores stream messages in the replica, in their order and in one batch when
// the replica can (store.BatchAppender), and advances applied.
func (s *Store) apply(ctx context.Context, msgs []jetstream.Msg) error {
	applied := s.Applied()
	var todo []message
	for _, msg := range msgs {
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("%w: metadata: %v", ErrBadMessage, err)
		}
		m := message{seq: meta.Sequence.Stream, pending: meta.NumPending, subject: msg.Subject(), data: msg.Data()}
		if m.seq <= applied {
			continue // redelivered after the replica had it
		}
		if m.stream, m.evs, err = DecodeMessage(m.subject, m.data); err != nil {
			return fmt.Errorf("sequence %d: %w", m.seq, err)
		}
		todo = append(todo, m)
		applied = m.seq
	}
	if len(todo) == 0 {
		return nil
	}
	first, last := todo[0], todo[len(todo)-1]
	if err := s.appendReplica(ctx, todo); err != nil {
		return fmt.Errorf("sequences %d-%d: replica append: %w", first.seq, last.seq, err)
	}
	s.mu.Lock()
	for _, m := range todo {
		s.track.add(m.seq, m.subject, m.data)
	}
	s.mu.Unlock()
	// The head is saved when the consumer has caught up or every checkpointEvery
	// messages, not per message (that would double the fsyncs of a catch-up): a restart
	// replays the messages after it, which the replica dedupes by event id. Only this
	// goroutine changes the tracker, so it reads it without the lock.
	if last.pending == 0 || first.seq/checkpointEvery != last.seq/checkpointEvery || last.seq%checkpointEvery == 0 {
		if err := s.track.save(ctx, s.Store); err != nil {
			return fmt.Errorf("sequence %d: replica head: %w", last.seq, err)
		}
	}
	s.mu.Lock()
	s.applied = last.seq
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// appendReplica appends the messages' events to the replica in order.
func (s *Store) appendReplica(ctx context.Context, todo []message) error {
	if ba, ok := s.Store.(store.BatchAppender); ok && len(todo) > 1 {
		batch := make([]store.Append, len(todo))
		for i, m := range todo {
			batch[i] = store.Append{Stream: m.stream, Expected: store.AnyVersion, Events: m.evs}
		}
		_, err := ba.AppendBatch(ctx, batch)
		return err
	}
	for _, m := range todo {
		if _, err := s.Store.Append(ctx, m.stream, store.AnyVersion, m.evs...); err != nil {
			return err
		}
	}
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
