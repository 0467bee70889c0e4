// Package cluster runs mcpes on several nodes that share one log through a replicated
// NATS JetStream stream. Every Append is published to the stream (one subject per
// aggregate, compare-and-set on the subject's last sequence, the first event id as the
// message id for dedupe); an ordered consumer applies the stream, in stream order, into
// the node's local replica (any store.Store, bbolt in production), which seals each
// envelope. Every replica therefore computes the same hash chain and Merkle tree, and
// an Append returns once the local replica has applied it (read-your-writes).
package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Defaults of Options.
const (
	DefaultStream       = "MCPES_LOG"
	DefaultReplicas     = 3
	DefaultMaxStaleness = 5 * time.Second
	// subjectPrefix is the prefix of every aggregate subject of the log stream.
	subjectPrefix = "mcpes.log."
	// maxMessage bounds one published Append (the JetStream default max payload is 1 MiB).
	maxMessage = 1 << 20
)

// Errors of the cluster store.
var (
	// ErrTooLarge is returned for an Append whose encoded events exceed maxMessage.
	ErrTooLarge = errors.New("append too large for one stream message")
	// ErrBadMessage is returned (and logged) for a stream message that is not an Append
	// written by this package; the apply loop stops on it, as skipping would fork replicas.
	ErrBadMessage = errors.New("stream message is not an mcpes append")
)

// Options configure Open.
type Options struct {
	// Stream is the JetStream stream name (default DefaultStream).
	Stream string
	// Replicas is the stream's replication factor when Open creates it (default 3).
	Replicas int
	// MaxStaleness bounds how long the node serves without confirming the stream head
	// (default DefaultMaxStaleness); see Fresh.
	MaxStaleness time.Duration
	// Now is the clock of the freshness lease (default time.Now).
	Now func() time.Time
	// Logger receives apply and lease failures (default: discarded).
	Logger *slog.Logger
	// Node is this node's id (nodeID): the subject of its decisions stream and of its
	// head reports (default "local").
	Node string
}

func (o *Options) setDefaults() {
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Replicas <= 0 {
		o.Replicas = DefaultReplicas
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = DefaultMaxStaleness
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Node == "" {
		o.Node = "local"
	}
}

// Store is a node's view of the shared log: reads are served by the local replica,
// appends go through the stream. It implements store.Store.
type Store struct {
	store.Store // the local replica; reads and checkpoints go straight to it

	opts   Options
	js     jetstream.JetStream
	stream jetstream.Stream
	cancel context.CancelFunc
	done   chan struct{}

	nc       *nats.Conn
	claims   jetstream.KeyValue // inspection claims (see Claim)
	secrets  jetstream.KeyValue // write-once secrets (see PutSecret)
	records  jetstream.KeyValue // shared mutable records (see SwapSecret)
	heads    *nats.Subscription // other nodes' head reports
	shipDone chan struct{}

	mu        sync.Mutex
	track     *tracker      // the shared log's head; written by the apply loop
	forked    error         // set when another node reported a different chain
	checks    uint64        // head reports cross-checked
	applied   uint64        // last stream sequence applied to the replica
	notify    chan struct{} // closed and replaced when applied moves
	confirmed time.Time     // last time the stream head was confirmed applied
	applyErr  error         // set when the apply loop stopped
	kick      chan struct{} // restarts the consumer (see renew)
}

// Open joins the stream through nc (creating it when absent) and starts applying it
// into replica from the replica's last applied sequence. Close stops the apply loop and
// closes the replica; nc stays the caller's.
func Open(ctx context.Context, nc *nats.Conn, replica store.Store, opts Options) (*Store, error) {
	opts.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	var stream jetstream.Stream
	err = retry(ctx, func(ctx context.Context) (err error) {
		stream, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: opts.Stream, Subjects: []string{subjectPrefix + ">"},
			Storage: jetstream.FileStorage, Replicas: opts.Replicas,
			Duplicates: 2 * time.Minute, MaxMsgSize: maxMessage,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", opts.Stream, err)
	}
	err = retry(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: opts.Stream + decisionsSuffix, Subjects: []string{decisionsPrefix + ">"},
			Storage: jetstream.FileStorage, Replicas: opts.Replicas,
			Duplicates: 2 * time.Minute, MaxMsgSize: maxMessage,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: stream %s: %w", opts.Stream+decisionsSuffix, err)
	}
	claims, err := openBucket(ctx, js, opts, claimsSuffix, jetstream.KeyValueConfig{TTL: ClaimTTL})
	if err != nil {
		return nil, err
	}
	secrets, err := openBucket(ctx, js, opts, secretsSuffix, jetstream.KeyValueConfig{MaxValueSize: maxMessage - 1024})
	if err != nil {
		return nil, err
	}
	records, err := openBucket(ctx, js, opts, recordsSuffix, jetstream.KeyValueConfig{MaxValueSize: maxMessage - 1024})
	if err != nil {
		return nil, err
	}
	track, err := loadTracker(ctx, replica)
	if err != nil {
		return nil, fmt.Errorf("cluster: replica head: %w", err)
	}
	s := &Store{Store: replica, opts: opts, js: js, stream: stream, nc: nc, claims: claims, secrets: secrets, records: records,
		done: make(chan struct{}), shipDone: make(chan struct{}), track: track,
		applied: track.seq, notify: make(chan struct{}), kick: make(chan struct{}, 1)}
	if s.heads, err = nc.Subscribe(headsPrefix+">", s.crossCheck); err != nil {
		return nil, fmt.Errorf("cluster: head reports: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.applyLoop(runCtx)
	go s.leaseLoop(runCtx)
	go s.shipLoop(runCtx)
	return s, nil
}

// SharedHead returns the shared log's head as this node has applied it.
func (s *Store) SharedHead() Head {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.track.head()
}

// Subject returns the stream subject of an aggregate: its name in unpadded base64url,
// so that any stream name is one valid subject token.
func Subject(stream string) string {
	return subjectPrefix + base64.RawURLEncoding.EncodeToString([]byte(stream))
}

// Applied returns the last stream sequence applied to the local replica.
func (s *Store) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Append publishes evs as one stream message on stream's subject and returns once the
// local replica has applied it; a node-local stream (domain.NodeLocal: connection
// decisions) is appended to the replica alone. expected is checked by the stream (compare-and-set on
// the subject's last sequence), not by the replica, so that two nodes racing on one
// aggregate see exactly one win. A retried Append with the same first event id is
// deduplicated by the stream.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (store.AppendResult, error) {
	if err := store.ValidateAppend(stream, evs); err != nil {
		return store.AppendResult{}, err
	}
	if domain.NodeLocal(stream) {
		// A decision is the deciding node's: its own log has it at once and the ship
		// loop copies it to the node's decisions stream.
		return s.Store.Append(ctx, stream, expected, evs...)
	}
	body, err := json.Marshal(evs)
	if err != nil {
		return store.AppendResult{}, fmt.Errorf("cluster: encode append: %w", err)
	}
	if len(body) > maxMessage-1024 {
		return store.AppendResult{}, ErrTooLarge
	}
	popts := []jetstream.PublishOpt{jetstream.WithMsgID(evs[0].ID)}
	if expected != store.AnyVersion {
		seq, err := s.subjectSeq(ctx, stream, expected)
		if err != nil {
			return store.AppendResult{}, err
		}
		popts = append(popts, jetstream.WithExpectLastSequencePerSubject(seq))
	}
	ack, err := s.publish(ctx, Subject(stream), body, popts)
	if err != nil {
		if isConflict(err) {
			// Another node's write won: return once this node has applied it, so that a
			// caller deciding again reads it (as a single node's conflict does).
			s.awaitMoved(ctx, stream, uint64(expected))
			actual, _ := s.Store.StreamVersion(ctx, stream)
			return store.AppendResult{}, &store.ConflictError{Stream: stream, Expected: expected, Actual: actual}
		}
		return store.AppendResult{}, fmt.Errorf("cluster: publish %s: %w", stream, err)
	}
	if err := s.waitApplied(ctx, ack.Sequence); err != nil {
		return store.AppendResult{}, err
	}
	// Every event is in the replica now: appending them again stores nothing and
	// reports where they are.
	res, err := s.Store.Append(ctx, stream, store.AnyVersion, evs...)
	if err != nil {
		return store.AppendResult{}, err
	}
	if !ack.Duplicate {
		res.Duplicates = 0
	}
	return res, nil
}

// publish retries while the stream reports the same message id still in flight (10158).
func (s *Store) publish(ctx context.Context, subject string, body []byte, popts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	var ack *jetstream.PubAck
	err := retry(ctx, func(ctx context.Context) (err error) {
		ack, err = s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: body}, popts...)
		return err
	})
	return ack, err
}

// retry calls fn again, while ctx lasts, as long as it fails with a message id still in
// flight (10158), JetStream briefly unavailable (503: no leader while one is
// elected), a request that timed out on its own (a new cluster answers slowly while
// several nodes create the same stream) or one nobody answered yet (a consumer or
// stream whose leader is still being placed). A retried publish is safe: the message id
// dedupes one that did land; every other call retried here is idempotent.
func retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		// Each attempt has its own bound: a request whose answer was lost (a server
		// busy forming the cluster) would otherwise wait out the caller's whole context.
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil || !transient(ctx, err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// attemptTimeout bounds one JetStream request retried by retry.
const attemptTimeout = 5 * time.Second

// transient reports an error worth retrying while ctx lasts.
func transient(ctx context.Context, err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeDuplicateInFlight || apiErr.ErrorCode == errCodeNoPeers || apiErr.Code == 503
	}
	return ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders))
}

// errCodeDuplicateInFlight is the JetStream error for a message id whose first publish
// is still being replicated.
const errCodeDuplicateInFlight jetstream.ErrorCode = 10158

// errCodeNoPeers is "no suitable peers for placement": the nats servers have not all
// joined the cluster yet (they were started together with the nodes).
const errCodeNoPeers jetstream.ErrorCode = 10005

// isConflict reports a failed compare-and-set: 10071, or 10164 while a write to the
// subject is still replicating; both mean the subject moved.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// subjectSeq maps an expected stream version to the stream sequence the aggregate's
// subject must end at. It reads the subject's last message from the stream, waits for
// the replica to apply it and compares the replica's version: a mismatch is a conflict
// without a publish; a match publishes with that sequence, which the stream rejects if
// another node wrote in between.
func (s *Store) subjectSeq(ctx context.Context, stream string, expected int64) (uint64, error) {
	var seq uint64
	var msg *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		msg, err = s.stream.GetLastMsgForSubject(ctx, Subject(stream))
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return 0, fmt.Errorf("cluster: last message of %s: %w", stream, err)
	default:
		seq = msg.Sequence
	}
	if err := s.waitApplied(ctx, seq); err != nil {
		return 0, err
	}
	actual, err := s.Store.StreamVersion(ctx, stream)
	if err != nil {
		return 0, err
	}
	if uint64(expected) != actual {
		return 0, &store.ConflictError{Stream: stream, Expected: expected, Actual: actual}
	}
	return seq, nil
}

// awaitMoved waits, at most attemptTimeout, until the replica holds stream beyond
// version from: the write that won a compare-and-set may still be replicating when
// the loser hears of it (10164), so the stream's last message is no guide yet.
func (s *Store) awaitMoved(ctx context.Context, stream string, from uint64) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	for {
		s.mu.Lock()
		ch := s.notify
		s.mu.Unlock()
		if v, err := s.Store.StreamVersion(ctx, stream); err != nil || v != from {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// waitApplied blocks until the replica has applied stream sequence seq.
func (s *Store) waitApplied(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		applied, ch, stopped := s.applied, s.notify, s.applyErr
		s.mu.Unlock()
		if applied >= seq {
			return nil
		}
		if stopped != nil {
			return fmt.Errorf("cluster: replica stopped applying: %w", stopped)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Close stops applying and shipping and closes the replica.
func (s *Store) Close() error {
	s.cancel()
	unsubErr := s.heads.Unsubscribe()
	// With every nats server gone, nats.go can sit in one consumer reset for a while
	// whatever the context says: Close waits a bounded time, and then leaves the head
	// as last saved (at the last caught-up message) rather than hang a shutdown.
	timeout := time.After(closeWait)
	for _, done := range []chan struct{}{s.done, s.shipDone} {
		select {
		case <-done:
		case <-timeout:
			s.opts.Logger.Warn("cluster: stopping without the apply loop (nats unreachable); the replica resumes from its last saved head")
			return errors.Join(unsubErr, s.Store.Close())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	s.mu.Lock()
	err := s.track.save(ctx, s.Store)
	s.mu.Unlock()
	return errors.Join(err, unsubErr, s.Store.Close())
}

// closeWait bounds how long Close waits for the apply and ship loops.
const closeWait = 5 * time.Second

// Leader returns the name of the stream's current leader server ("" when none).
func (s *Store) Leader(ctx context.Context) (string, error) {
	info, err := s.info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// CatchUp waits until the replica has applied the stream's head as it is now.
func (s *Store) CatchUp(ctx context.Context) error {
	info, err := s.info(ctx)
	if err != nil {
		return fmt.Errorf("cluster: stream info: %w", err)
	}
	return s.waitApplied(ctx, info.State.LastSeq)
}

// info asks the stream for its state. It looks the stream up afresh each time:
// jetstream.Stream.Info caches its answer in the shared handle, which concurrent
// callers would race on.
func (s *Store) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	st, err := s.js.Stream(ctx, s.opts.Stream)
	if err != nil {
		return nil, err
	}
	return st.CachedInfo(), nil
}
