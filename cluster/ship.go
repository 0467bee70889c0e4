package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

const (
	// decisionsSuffix names the decisions stream after the log stream
	// (MCPES_LOG_DECISIONS by default).
	decisionsSuffix = "_DECISIONS"
	// decisionsPrefix starts the subject of each node's decisions.
	decisionsPrefix = "mcpes.decisions."
	// headsPrefix starts the subject of each node's head reports (core NATS).
	headsPrefix = "mcpes.heads."
	// ShippedCheckpoint is the replica checkpoint: the position up to which this
	// node's decisions are in the decisions stream.
	ShippedCheckpoint = "cluster/shipped"
	// shipBatch bounds the events read and published per round.
	shipBatch = 256
)

// ErrForked is the cause of Forked when another node reported a different chain hash
// for a stream sequence this node applied: the replicas no longer hold the same log.
var ErrForked = errors.New("another node holds a different shared log")

// nodeToken is a node id as one subject token.
func nodeToken(node string) string { return base64.RawURLEncoding.EncodeToString([]byte(node)) }

// shipLoop copies this node's decisions (domain.NodeLocal streams) from its own log to
// its subject of the decisions stream, in log order, each once (the event id is the
// message id, and the shipped position is checkpointed after each acknowledged batch).
// Shipping runs beside the connection path: a decision never waits for it.
func (s *Store) shipLoop(ctx context.Context) {
	defer close(s.shipDone)
	for ctx.Err() == nil {
		err := s.ship(ctx)
		if ctx.Err() == nil {
			s.opts.Logger.Warn("cluster: shipping decisions", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// errBatchFull stops a ReadRecords scan once a batch is full.
var errBatchFull = errors.New("batch full")

// ship ships from the checkpoint on until ctx ends or a publish fails. Each message is
// the decision's stored record (hash and canonical bytes), so a reader can check it
// against the hash without this node.
func (s *Store) ship(ctx context.Context) error {
	from, err := s.Store.Checkpoint(ctx, ShippedCheckpoint)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	subject := decisionsPrefix + nodeToken(s.opts.Node)
	for {
		if _, err := s.Store.Wait(ctx, from); err != nil {
			return err
		}
		var acks []jetstream.PubAckFuture
		last := from
		err := s.Store.ReadRecords(ctx, from+1, func(pos uint64, rec []byte) error {
			last = pos
			_, canon, err := events.SplitRecord(rec)
			if err != nil {
				return err
			}
			if domain.NodeLocal(string(events.Unquote(events.Field(canon, "subject")))) {
				id := string(events.Unquote(events.Field(canon, "id")))
				ack, err := s.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: bytes.Clone(rec)}, jetstream.WithMsgID(id))
				if err != nil {
					return err
				}
				acks = append(acks, ack)
			}
			if pos-from >= shipBatch {
				return errBatchFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBatchFull) {
			return err
		}
		// An ack lost in a partition never arrives: give up on the round after
		// attemptTimeout and ship it again (the message ids dedupe what did land).
		timeout := time.NewTimer(attemptTimeout)
		for _, ack := range acks {
			select {
			case <-ack.Ok():
			case err := <-ack.Err():
				timeout.Stop()
				return err
			case <-timeout.C:
				return errors.New("decisions not acknowledged in time")
			case <-ctx.Done():
				timeout.Stop()
				return ctx.Err()
			}
		}
		timeout.Stop()
		if len(acks) > 0 {
			if err := s.Store.SetCheckpoint(ctx, ShippedCheckpoint, last); err != nil {
				return err
			}
		}
		from = last
	}
}

// Decision is one decision read back from the decisions stream.
type Decision struct {
	// Node is the id of the node that made it.
	Node string `json:"node"`
	// Seq is its position in the decisions stream (every node's, in arrival order).
	Seq uint64 `json:"seq"`
	// Event is the decision as sealed in that node's own log; its hash was checked
	// against its bytes and previous hash.
	Event events.Envelope `json:"event"`
}

// DecisionPage is one page of RecentDecisions, oldest first.
type DecisionPage struct {
	Decisions []Decision `json:"decisions"`
	// Older is the Before of the page before this one; 0 when this page starts at the
	// stream's first message.
	Older uint64 `json:"older,omitempty"`
}

// MaxDecisionPage bounds the limit of RecentDecisions.
const MaxDecisionPage = 1000

// RecentDecisions reads the decisions shipped to the decisions stream at positions
// [before-limit, before) (before 0: up to the stream's head), of every node or, when
// node is set, of that node only. A page covers limit positions of the stream, so a
// node's page may hold fewer decisions than limit; each costs at most limit messages.
func (s *Store) RecentDecisions(ctx context.Context, node string, before uint64, limit int) (DecisionPage, error) {
	if limit <= 0 || limit > MaxDecisionPage {
		return DecisionPage{}, fmt.Errorf("cluster: decision page limit %d not in 1..%d", limit, MaxDecisionPage)
	}
	// A read has no side effect, so the whole page is read again after a transient
	// failure (a fresh consumer whose leader has not subscribed yet answers its first
	// fetch with no responders), within readTimeout: an API call must not hang.
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	var page DecisionPage
	err := retry(ctx, func(ctx context.Context) (err error) {
		page, err = s.decisionPage(ctx, node, before, limit)
		return err
	})
	return page, err
}

const (
	// readTimeout bounds a read of the decisions stream, retries included.
	readTimeout = 15 * time.Second
	// infoTimeout bounds one ask for the decisions stream's state.
	infoTimeout = 2 * time.Second
)

// decisionPage is one attempt of RecentDecisions.
func (s *Store) decisionPage(ctx context.Context, node string, before uint64, limit int) (DecisionPage, error) {
	page := DecisionPage{Decisions: []Decision{}}
	// The stream's leader answers this; one asked during an election never answers, so
	// it is asked again soon rather than at the end of the attempt.
	ictx, cancel := context.WithTimeout(ctx, infoTimeout)
	st, err := s.js.Stream(ictx, s.opts.Stream+decisionsSuffix)
	cancel()
	if err != nil {
		return page, fmt.Errorf("cluster: decisions stream: %w", err)
	}
	state := st.CachedInfo().State
	end := state.LastSeq
	if before > 0 && before-1 < end {
		end = before - 1
	}
	if state.Msgs == 0 || end < state.FirstSeq {
		return page, nil
	}
	start := state.FirstSeq
	if end-start+1 > uint64(limit) {
		start = end - uint64(limit) + 1
		page.Older = start
	}
	// The consumer reads every position of the page and the node's are kept here: a
	// server-side filter would leave the reader not knowing how many to wait for.
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: start, AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute, MemoryStorage: true})
	if err != nil {
		return page, fmt.Errorf("cluster: decisions consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
		defer cancel()
		_ = st.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// The consumer may sit on a replica still catching up (a server just restarted):
	// it is asked until the page's last position came, and when a fetch brings nothing
	// the stream's leader is asked for each position left (one a moment behind, or
	// deleted, is then read or skipped, not waited for).
	subject := decisionsPrefix + nodeToken(node)
	keep := func(pos uint64, subj string, data []byte) error {
		if pos > end || (node != "" && subj != subject) {
			return nil
		}
		d, err := decodeDecision(subj, data)
		if err != nil {
			return fmt.Errorf("decisions stream position %d: %w", pos, err)
		}
		d.Seq = pos
		page.Decisions = append(page.Decisions, d)
		return nil
	}
	next := start
	for next <= end {
		batch, err := cons.Fetch(int(end-next+1), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return page, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return page, err
			}
			next = meta.Sequence.Stream + 1
			if err := keep(meta.Sequence.Stream, msg.Subject(), msg.Data()); err != nil {
				return page, err
			}
		}
		if err := batch.Error(); err != nil {
			return page, err
		}
		if got == 0 {
			break
		}
	}
	for ; next <= end; next++ {
		msg, err := st.GetMsg(ctx, next)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return page, err
		}
		if err := keep(next, msg.Subject, msg.Data); err != nil {
			return page, err
		}
	}
	return page, nil
}

// ReadDecisions calls fn with every decision shipped to the decisions stream of the
// log stream named stream (DefaultStream when ""), by every node, in the order they
// reached the stream (each node's own in its log order), up to the stream's head as
// it was when called. A message that is not a shipped decision stops the read with
// ErrBadMessage.
func ReadDecisions(ctx context.Context, nc *nats.Conn, stream string, fn func(Decision) error) error {
	if stream == "" {
		stream = DefaultStream
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, stream+decisionsSuffix)
	if err != nil {
		return fmt.Errorf("cluster: decisions stream: %w", err)
	}
	head := st.CachedInfo().State.LastSeq
	if st.CachedInfo().State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream+decisionsSuffix, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		d, err := decodeDecision(msg.Subject(), msg.Data())
		if err != nil {
			return err
		}
		d.Seq = meta.Sequence.Stream
		if err := fn(d); err != nil {
			return err
		}
		if meta.Sequence.Stream >= head {
			return nil
		}
	}
}

// decodeDecision parses one decisions stream message.
func decodeDecision(subject string, body []byte) (Decision, error) {
	tok, ok := strings.CutPrefix(subject, decisionsPrefix)
	if !ok || len(body) > maxMessage {
		return Decision{}, ErrBadMessage
	}
	node, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: subject: %v", ErrBadMessage, err)
	}
	e, err := events.DecodeRecord(body)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: body: %v", ErrBadMessage, err)
	}
	prev, err := hex.DecodeString(e.PrevHash)
	if err != nil || len(prev) != 32 {
		return Decision{}, fmt.Errorf("%w: prevhash %q", ErrBadMessage, e.PrevHash)
	}
	if _, err := events.CheckRecord([32]byte(prev), body); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if !domain.NodeLocal(e.Subject) {
		return Decision{}, fmt.Errorf("%w: %s is not a decision stream", ErrBadMessage, e.Subject)
	}
	return Decision{Node: string(node), Event: e}, nil
}

// reportHead publishes this node's head for the others to cross-check.
func (s *Store) reportHead() {
	h := s.SharedHead()
	if h.Seq == 0 {
		return
	}
	b, err := json.Marshal(headReport{Node: s.opts.Node, Seq: h.Seq, Chain: h.Chain})
	if err == nil {
		err = s.nc.Publish(headsPrefix+nodeToken(s.opts.Node), b)
	}
	if err != nil {
		s.opts.Logger.Debug("cluster: head report", "err", err)
	}
}

// crossCheck compares another node's head report with this node's chain at the same
// sequence (when it is still remembered); a difference is a fork, kept for Forked.
func (s *Store) crossCheck(m *nats.Msg) {
	r, err := decodeReport(m.Data)
	if err != nil || r.Node == s.opts.Node {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	chain, ok := s.track.chainAt(r.Seq)
	if !ok {
		return
	}
	s.checks++
	if chain != r.Chain && s.forked == nil {
		s.forked = fmt.Errorf("%w: node %q has chain %x at sequence %d, this node %x",
			ErrForked, r.Node, r.Chain[:], r.Seq, chain[:])
		s.opts.Logger.Error("cluster: shared log forked", "err", s.forked)
	}
}

// Forked returns why this node's shared log differs from another node's (nil when no
// report disagreed).
func (s *Store) Forked() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.forked
}

// CrossChecks returns how many other nodes' head reports this node has compared.
func (s *Store) CrossChecks() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checks
}
