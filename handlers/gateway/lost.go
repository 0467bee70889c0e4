package gateway

import (
	"strings"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// observe is the store observer (on the commit path, so it only reads the projection
// and starts goroutines): a recorded connection.lost, or with
// Deps.ReinspectOnUnreachable a connection.open_failed of class unreachable, asks for
// a re-inspection of the server behind it (one at a time per server).
func (g *Gateway) observe(evs []events.Envelope) {
	if g.d.Inspector == nil || g.closed.Load() {
		return
	}
	for i := range evs {
		switch evs[i].Type {
		case events.TypeConnectionLost:
		case events.TypeConnectionOpenFailed:
			// Only when asked, and only for an upstream that cannot be reached at all:
			// timeouts, protocol and auth failures are left to the repository's
			// backoff and breaker.
			if !g.d.ReinspectOnUnreachable {
				continue
			}
			fact, err := events.Decode(evs[i])
			if f, ok := fact.(domain.ConnectionOpenFailed); err != nil || !ok || f.Class != domain.FailureUnreachable {
				continue
			}
		default:
			continue
		}
		owner, name, ok := parseConnSubject(evs[i].Subject)
		if !ok {
			continue
		}
		st, _, _ := g.d.Servers.Effective(owner, name)
		if !st.Exists {
			continue
		}
		g.reinspect(st.Scope, name)
	}
}

// parseConnSubject splits "conn/<owner>/<server>" ("_" = the shared owner "").
func parseConnSubject(subject string) (owner, server string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "conn/")
	if !ok {
		return "", "", false
	}
	owner, server, ok = strings.Cut(rest, "/")
	if !ok || owner == "" || server == "" {
		return "", "", false
	}
	if owner == domain.SharedOwner {
		owner = ""
	}
	return owner, server, true
}

// reinspect runs one background inspection of (scope, name) unless one is already
// running from here. A failed inspection turns the server into a stub the
// repositories may not connect, which removes its tools from every offer; a
// successful one after a failure brings them back.
func (g *Gateway) reinspect(scope domain.Scope, name string) {
	key := string(scope) + "\x00" + name
	g.inspectMu.Lock()
	if g.inspecting[key] {
		g.inspectMu.Unlock()
		return
	}
	g.inspecting[key] = true
	g.inspectMu.Unlock()
	if !g.begin() {
		g.inspectMu.Lock()
		delete(g.inspecting, key)
		g.inspectMu.Unlock()
		return
	}
	go func() {
		defer g.wg.Done()
		defer func() {
			g.inspectMu.Lock()
			delete(g.inspecting, key)
			g.inspectMu.Unlock()
		}()
		out, err := g.d.Inspector.Inspect(g.ctx, scope, name)
		switch {
		case err != nil:
			g.d.Logger.Warn("gateway: re-inspection after a lost connection", "scope", scope, "server", name, "err", err)
		case !out.OK:
			g.d.Logger.Info("gateway: server unreachable after a lost connection; its tools are withdrawn",
				"scope", scope, "server", name)
		}
	}()
}
