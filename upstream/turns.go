package upstream

import (
	"context"
	"encoding/json"

	"github.com/mcpes/mcpes/domain"
)

// Which client session a server's request belongs to, where the transport cannot
// say. On streamable HTTP before 2026-07-28 it is exact (the request arrives on
// the answer stream of the call that caused it); on 2026-07-28 servers ask within
// results (multi round-trip), and a request of the older kind that arrives while
// two sessions have calls in flight is refused rather than guessed (see peerFor).
// On stdio, WebSocket and legacy SSE the protocol carries no related-request id,
// so:
//
//   - a request whose _meta.progressToken is the token mcpes gave a call in flight
//     goes to that call's client session (exact);
//   - otherwise it goes to the one client session with calls in flight: calls of
//     different client sessions take turns on such a connection (turn), so the
//     sessions with calls in flight are never more than one, and a server request
//     made during a call always reaches the session that made it;
//   - with no call in flight (roots/list after roots/list_changed, say) it goes
//     to the session that last used the connection.
//
// A connection belongs to one owner's repository, so none of this ever reaches
// another owner's session. The price of taking turns: on those transports a
// session's calls wait while another session's calls are running (each bounded
// by its caller's context).

// turn waits until no call of another peer is in flight on c, then counts one
// call of peer in. Calls of one peer run together; a peer that waits is not
// overtaken by new calls of the peer in turn. Only stdio, WebSocket and SSE
// connections take turns; a nil peer (nothing to route to) never waits.
func (c *Conn) turn(ctx context.Context, peer Peer) (func(), error) {
	if peer == nil || c.transport == domain.TransportStreamableHTTP {
		return func() {}, nil
	}
	r := &c.relay
	waited := false
	for {
		r.mu.Lock()
		if r.turnCalls == 0 || (r.turnPeer == peer && (r.turnWaiting == 0 || waited)) {
			if waited {
				r.turnWaiting--
			}
			r.turnPeer = peer
			r.turnCalls++
			r.mu.Unlock()
			return c.endTurn, nil
		}
		if !waited {
			r.turnWaiting++
			waited = true
		}
		if r.turnFree == nil {
			r.turnFree = make(chan struct{})
		}
		free := r.turnFree
		r.mu.Unlock()
		select {
		case <-free:
		case <-ctx.Done():
			r.mu.Lock()
			r.turnWaiting--
			r.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

func (c *Conn) endTurn() {
	r := &c.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	r.turnCalls--
	if r.turnCalls == 0 {
		r.turnPeer = nil
		if r.turnFree != nil {
			close(r.turnFree)
			r.turnFree = nil
		}
	}
}

// peerFor is the client session a server request or message with params belongs
// to when the transport did not say (see above); nil when there is none.
func (c *Conn) peerFor(params json.RawMessage) Peer {
	var p struct {
		Meta struct {
			Token json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	var tok string
	r := &c.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	if json.Unmarshal(params, &p) == nil && json.Unmarshal(p.Meta.Token, &tok) == nil {
		if call := r.calls[tok]; call != nil && call.peer != nil {
			return call.peer
		}
	}
	var only Peer
	for _, call := range r.order {
		switch {
		case call.peer == nil || call.peer == only:
		case only == nil:
			only = call.peer
		default:
			return nil // two sessions in flight (only on streamable HTTP): refused, not guessed
		}
	}
	if only != nil {
		return only
	}
	return r.lastPeer
}
