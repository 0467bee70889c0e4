package gateway

import "context"

// MaxStepUps bounds the step-up authorizations of one (owner, server) without a
// successful call in between, so an upstream that never accepts the scope it asks
// for cannot send an owner round forever.
const MaxStepUps = 3

func stepUpKey(owner, srv string) string { return owner + "\x00" + srv }

// stepUpLink starts a step-up authorization when srv refused one of the owner's
// requests with 403 insufficient_scope (Deps.StepUp), at most MaxStepUps times in a
// row, and returns the link the owner must open (ok false when there is none).
func (o *ownerServer) stepUpLink(ctx context.Context, srv string) (link string, ok bool, err error) {
	if o.g.d.StepUp == nil || o.owner == "" {
		return "", false, nil
	}
	k := stepUpKey(o.owner, srv)
	o.g.stepMu.Lock()
	if o.g.stepUps[k] >= MaxStepUps {
		o.g.stepMu.Unlock()
		return "", false, nil
	}
	if o.g.stepUps == nil {
		o.g.stepUps = map[string]int{}
	}
	o.g.stepUps[k]++
	o.g.stepMu.Unlock()
	u, err := o.g.d.StepUp(ctx, o.actorOf(ctx), o.owner, srv)
	if err != nil || u == "" {
		o.g.stepMu.Lock()
		o.g.stepUps[k]--
		o.g.stepMu.Unlock()
		return "", false, err
	}
	return u, true, nil
}

// callSucceeded resets the owner's step-up count of srv.
func (g *Gateway) callSucceeded(owner, srv string) {
	g.stepMu.Lock()
	delete(g.stepUps, stepUpKey(owner, srv))
	g.stepMu.Unlock()
}
