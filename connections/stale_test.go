package connections

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/mcpes/mcpes/domain"
)

func TestRepository_StaleClusterNode_RefusesNewConnectsOnly(t *testing.T) {
	// given a clustered node whose lease has run out, with alice's clock server
	srv := newMCPServer(t)
	var stale atomic.Bool
	e := newEnv(t, func(o *Options) { o.StaleNode = stale.Load })
	e.put(domain.UserScope("alice"), "clock", httpConfig(srv.URL))
	e.put(domain.UserScope("bob"), "clock", httpConfig(srv.URL))
	if _, err := e.m.Repo("bob").Get(ctxT(t), "clock"); err != nil {
		t.Fatal(err)
	}
	stale.Store(true)

	// when alice asks for a new connection and bob for his alive one
	_, errAlice := e.m.Repo("alice").Get(ctxT(t), "clock")
	c, errBob := e.m.Repo("bob").Get(ctxT(t), "clock")

	// then alice is refused with rule stale_node, recorded with the input, without a
	// dial, and bob keeps his connection
	var re *RefusedError
	if !errors.As(errAlice, &re) || re.Rule != domain.RuleStaleNode || !errors.Is(errAlice, ErrUnavailable) {
		t.Fatalf("alice: %v", errAlice)
	}
	if errBob != nil || c == nil {
		t.Fatalf("bob: %v", errBob)
	}
	facts := e.facts("alice", "clock")
	refused, ok := facts[len(facts)-1].(domain.ConnectionRefused)
	if !ok || refused.Rule != domain.RuleStaleNode || !refused.Inputs.StaleNode {
		t.Fatalf("alice's events: %v", kinds(facts))
	}
	if d := e.dials.Load(); d != 1 {
		t.Fatalf("%d dials, want bob's one", d)
	}
}
