package registry

import (
	"context"
	"strconv"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Claimer lets the nodes of a cluster agree, leader-free, on which one inspects a
// server config: the first to claim its key inspects and records the outcome, which
// reaches the others through the shared log.
type Claimer interface {
	// Claim takes key for this node with compare-and-set; false when another node
	// holds it (inspecting, or settled not long ago).
	Claim(ctx context.Context, key string) (bool, error)
	// Settle marks this node's claim of key done: its outcome is in the log.
	Settle(ctx context.Context, key string) error
	// Settled reports whether key's holder settled it, and whether it is held at
	// all (a claim expires when its holder dies).
	Settled(ctx context.Context, key string) (settled, held bool, err error)
}

// claimPoll is how often a node waiting for another node's inspection looks again.
const claimPoll = 100 * time.Millisecond

// inspectClaimed inspects st's config and records the outcome, unless another node of
// the cluster claimed that inspection: then it waits for that node's outcome to reach
// the projection and returns it. Without Claims, or when the claims cannot be reached
// (an inspection is never blocked by the cluster), it inspects here.
func (s *Service) inspectClaimed(st domain.ServerState, actor, causation string) (domain.InspectionOutcome, error) {
	claims := s.opts.Claims
	key := domain.ServerStream(st.Scope, st.Name) + "@" + strconv.FormatUint(st.Version, 10)
	// A holder that died lets its claim expire; waiting is bounded by twice the
	// inspection's own timeout plus that expiry.
	deadline := time.Now().Add(2*time.Duration(st.Config.InitTimeout())*time.Millisecond + 2*time.Minute)
	for claims != nil && time.Now().Before(deadline) {
		won, err := claims.Claim(s.bgCtx, key)
		if err != nil {
			s.log.Warn("inspection claim", "key", key, "err", err)
			break
		}
		if won {
			out := s.runInspector(st)
			if err := s.record(s.bgCtx, st.Scope, st.Name, st.Version, out, actor, causation); err != nil {
				return out, err
			}
			if err := claims.Settle(s.bgCtx, key); err != nil {
				s.log.Warn("inspection claim: settle", "key", key, "err", err)
			}
			return out, nil
		}
		settled, held, err := claims.Settled(s.bgCtx, key)
		if err != nil {
			s.log.Warn("inspection claim", "key", key, "err", err)
			break
		}
		if settled {
			if cur, ok := s.awaitInspected(st, deadline); ok {
				return outcomeOf(cur), nil
			}
		}
		if !held {
			continue // expired: claim it again
		}
		select {
		case <-s.bgCtx.Done():
			return domain.InspectionOutcome{}, ErrClosed
		case <-time.After(claimPoll):
		}
	}
	out := s.runInspector(st)
	return out, s.record(s.bgCtx, st.Scope, st.Name, st.Version, out, actor, causation)
}

// awaitInspected waits until the projection holds an inspection of st's config, or
// shows that config replaced or removed (then no inspection of it will come).
func (s *Service) awaitInspected(st domain.ServerState, deadline time.Time) (domain.ServerState, bool) {
	for time.Now().Before(deadline) {
		cur := s.state(st.Scope, st.Name)
		if !cur.Exists || cur.Version != st.Version || cur.Inspected {
			return cur, true
		}
		select {
		case <-s.bgCtx.Done():
			return cur, false
		case <-time.After(claimPoll):
		}
	}
	return domain.ServerState{}, false
}

// outcomeOf is the outcome another node recorded for cur's config.
func outcomeOf(cur domain.ServerState) domain.InspectionOutcome {
	if !cur.Exists || !cur.Inspected {
		return domain.InspectionOutcome{Class: domain.FailureProtocol, Message: "the config changed before another node's inspection of it was recorded"}
	}
	if cur.InspectionFailed || cur.LastSuccess == nil {
		return domain.InspectionOutcome{Class: cur.FailureClass, Message: cur.FailureMessage, RequiresOAuth: cur.OAuthDetected}
	}
	in := cur.LastSuccess
	return domain.InspectionOutcome{OK: true, ServerName: in.ServerName, ServerVersion: in.ServerVersion,
		ProtocolVersion: in.ProtocolVersion, Capabilities: in.Capabilities, Tools: in.Tools, Prompts: in.Prompts,
		Resources: in.Resources, ResourceTemplates: in.ResourceTemplates, Instructions: in.Instructions,
		AsOwner: in.AsOwner, RequiresOAuth: cur.OAuthDetected, Duration: time.Duration(in.DurationMS) * time.Millisecond}
}
