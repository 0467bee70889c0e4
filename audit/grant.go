package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// GrantState is what the log says about an owner's OAuth grant for a server at a
// position: the input of the oauth_grant_missing rule, in words a reviewer can check.
type GrantState struct {
	// Held is set when the owner held a usable grant: one that was not revoked or
	// refused, whose access token had not expired or could be refreshed.
	Held    bool      `json:"held"`
	GrantID string    `json:"grantId,omitempty"`
	Issuer  string    `json:"issuer,omitempty"`
	Scope   string    `json:"scope,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
	// Reason says why no grant was held (never authorized, revoked, ...).
	Reason string `json:"reason,omitempty"`
}

// grantAt folds the owner's grant facts for server up to pos: those of its grant
// stream and, from logs written before it, of its connection stream, in log order.
func grantAt(ctx context.Context, st store.Store, owner, server string, pos uint64, at time.Time) (*GrantState, error) {
	var facts []events.Envelope
	for _, stream := range domain.GrantStreams(owner, server) {
		for from := uint64(1); ; {
			page, err := st.ReadStream(ctx, stream, from, pageSize)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", stream, err)
			}
			done := len(page) < pageSize
			for _, e := range page {
				from = e.StreamVersion + 1
				if uint64(e.Sequence) > pos {
					done = true
					break
				}
				if events.Area(e.Type) == "oauth" || events.Area(e.Type) == "token" {
					facts = append(facts, e)
				}
			}
			if done {
				break
			}
		}
	}
	slices.SortFunc(facts, func(a, b events.Envelope) int { return cmp.Compare(a.Sequence, b.Sequence) })
	g := &GrantState{Reason: "never authorized"}
	refreshable := false
	for _, e := range facts {
		fact, err := events.Decode(e)
		if err != nil {
			continue
		}
		switch f := fact.(type) {
		case domain.OAuthCompleted:
			*g = GrantState{GrantID: f.GrantID, Issuer: f.Issuer, Scope: f.Scope, Since: e.Time, Expires: f.ExpiresAt}
			refreshable = f.Refreshable
		case domain.TokenRefreshed:
			if f.GrantID == g.GrantID {
				g.Expires = f.ExpiresAt
			}
		case domain.TokenRevoked:
			if f.GrantID == g.GrantID {
				*g = GrantState{Reason: "revoked (" + f.Reason + ") at " + stamp(e.Time)}
				refreshable = false
			}
		}
	}
	return finishGrant(g, refreshable, at), nil
}

func finishGrant(g *GrantState, refreshable bool, at time.Time) *GrantState {
	switch {
	case g.GrantID == "":
	case refreshable || g.Expires.IsZero() || at.Before(g.Expires):
		g.Held = true
	default:
		g.Reason = "the access token expired at " + stamp(g.Expires) + " and cannot be refreshed"
	}
	return g
}

// grantWords says the grant state in one line.
func grantWords(g *GrantState) string {
	if !g.Held {
		return "authorization: none (" + g.Reason + ")"
	}
	s := fmt.Sprintf("authorization: grant %s from %s since %s", g.GrantID, g.Issuer, stamp(g.Since))
	if g.Scope != "" {
		s += ", scope " + g.Scope
	}
	return s
}

// oauthSummary describes an OAuth fact of a connection stream.
func oauthSummary(fact any) (string, bool) {
	switch f := fact.(type) {
	case domain.OAuthFlowStarted:
		return fmt.Sprintf("sent to authorize at %s (client: %s)", f.Issuer, f.Client), true
	case domain.OAuthCompleted:
		return fmt.Sprintf("authorized: grant %s from %s", f.GrantID, f.Issuer), true
	case domain.OAuthFailed:
		return fmt.Sprintf("authorization failed at %s: %s", f.Stage, f.Reason), true
	case domain.TokenRefreshed:
		return fmt.Sprintf("token of grant %s refreshed (generation %d)", f.GrantID, f.Generation), true
	case domain.TokenRefreshFailed:
		return fmt.Sprintf("refresh of grant %s failed (%s): %s", f.GrantID, f.Class, f.Reason), true
	case domain.TokenRevoked:
		return fmt.Sprintf("grant %s dropped (%s)", f.GrantID, f.Reason), true
	}
	return "", false
}
