package oauth

import (
	"context"
	"time"
)

// StepUpTTL is how long a 403 insufficient_scope challenge seen on an owner's
// request waits for the caller whose request failed to ask for the step-up.
const StepUpTTL = time.Minute

// stepUpNote is the scope an upstream's 403 insufficient_scope challenge asked for.
type stepUpNote struct {
	scope string
	at    time.Time
}

// noteStepUp keeps the challenge of a 403 insufficient_scope refusal of owner's
// request to server, for StepUp.
func (b *Broker) noteStepUp(owner, server string, ch Challenge) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stepUps == nil {
		b.stepUps = map[grantKey]stepUpNote{}
	}
	b.stepUps[grantKey{owner, server}] = stepUpNote{scope: ch.Scope, at: b.now()}
}

// StepUp starts a new authorization of server for owner after the server refused
// one of owner's requests with 403 insufficient_scope: the scope asked for is the
// one granted (else the config's oauth.scope) with the challenged one added. The
// challenge is consumed. Returns the URL to send the owner to, or "" (and no error)
// when server sent owner no such challenge within StepUpTTL.
func (b *Broker) StepUp(ctx context.Context, actor, owner, server string) (string, error) {
	k := grantKey{owner, server}
	b.mu.Lock()
	note, ok := b.stepUps[k]
	delete(b.stepUps, k)
	b.mu.Unlock()
	if !ok || b.now().Sub(note.at) > StepUpTTL {
		return "", nil
	}
	t, err := b.target(owner, server)
	if err != nil {
		return "", err
	}
	granted := t.OAuthScope
	if g := b.cached(owner, server); g != nil && g.Scope != "" {
		granted = g.Scope
	}
	t.OAuthScope = StepUpScope(granted, Challenge{Scope: note.scope})
	return b.Start(ctx, actor, t)
}
