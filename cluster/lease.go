package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrStale is returned by CheckFresh when the node has not confirmed the stream head
// within Options.MaxStaleness: its replica may miss writes made elsewhere.
var ErrStale = errors.New("node has not confirmed the log head within cluster.maxStaleness")

// Fresh reports whether the node confirmed, within MaxStaleness of now, that a quorum
// of the stream's replicas is live and that the replica had applied the head.
func (s *Store) Fresh() bool { return s.CheckFresh() == nil }

// CheckFresh returns ErrStale when the lease has run out.
func (s *Store) CheckFresh() error {
	s.mu.Lock()
	confirmed := s.confirmed
	s.mu.Unlock()
	if confirmed.IsZero() || s.opts.Now().Sub(confirmed) > s.opts.MaxStaleness {
		return ErrStale
	}
	return nil
}

// leaseLoop renews the freshness lease every fifth of MaxStaleness.
func (s *Store) leaseLoop(ctx context.Context) {
	every := s.opts.MaxStaleness / 5
	for {
		s.renew(ctx)
		s.reportHead()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// leaseKeyPrefix names the claims-bucket key each node writes to renew its lease.
const leaseKeyPrefix = "lease/"

// renew asks the stream for its head and its replicas' liveness. An isolated ex-leader
// may keep answering STREAM.INFO naming itself leader, so the answer counts only when a
// quorum of peers was seen within the bound and a write through this node's server
// was acknowledged by a quorum; then, once the replica has applied the reported
// head, the lease is renewed from the time of the question.
func (s *Store) renew(ctx context.Context) {
	asked := s.opts.Now()
	ictx, cancel := context.WithTimeout(ctx, s.opts.MaxStaleness)
	defer cancel()
	info, err := s.info(ictx)
	if err != nil {
		s.opts.Logger.Debug("cluster lease: stream info", "err", err)
		return
	}
	if !quorate(info, s.opts.MaxStaleness) {
		s.opts.Logger.Debug("cluster lease: no live quorum")
		return
	}
	// A write that needs a quorum to be acknowledged: an isolated server (even one
	// that still calls itself the log's leader) cannot acknowledge it.
	if _, err := s.claims.Put(ictx, claimKey(leaseKeyPrefix+s.opts.Node), []byte(asked.UTC().Format(time.RFC3339Nano))); err != nil {
		s.opts.Logger.Debug("cluster lease: quorum write", "err", err)
		return
	}
	if err := s.waitApplied(ictx, info.State.LastSeq); err != nil {
		// A live quorum has the head and the replica did not get it within the
		// bound: the consumer may sit on a server that lost the cluster.
		if ctx.Err() == nil {
			s.opts.Logger.Warn("cluster: replica behind the stream head, restarting the consumer",
				"applied", s.Applied(), "head", info.State.LastSeq)
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
		return
	}
	s.mu.Lock()
	if asked.After(s.confirmed) {
		s.confirmed = asked
	}
	s.mu.Unlock()
}

// quorate reports a leader plus enough current peers seen within bound for a majority.
func quorate(info *jetstream.StreamInfo, bound time.Duration) bool {
	if info.Cluster == nil {
		return true // a single server: its answer is the head
	}
	if info.Cluster.Leader == "" {
		return false
	}
	live := 1
	for _, p := range info.Cluster.Replicas {
		if p != nil && p.Current && !p.Offline && p.Active <= bound {
			live++
		}
	}
	return live > (len(info.Cluster.Replicas)+1)/2
}
