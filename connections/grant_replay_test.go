package connections

import (
	"testing"

	"github.com/mcpes/mcpes/domain"
)

func TestReplayDecisions_GrantMustExistBeforeTheDecision(t *testing.T) {
	// given an app server that requires OAuth
	e := newEnv(t, nil)
	e.forged = true
	yes := true
	pos := e.put(domain.AppScope, "gh", domain.ServerConfig{Type: "streamable-http", URL: "http://127.0.0.1:1/mcp", RequiresOAuth: &yes})
	_, view, _ := e.servers.Effective("alice", "gh")
	opened := func(conn, grant string) domain.ConnectionOpened {
		return domain.ConnectionOpened{ConnID: conn, Inputs: domain.DecisionInputs{Owner: "alice", Server: "gh", Position: pos,
			Config: view, ExistingState: domain.ConnNone, OAuth: domain.GrantInputs{Checked: true, Grant: grant}}}
	}
	// when a connect cites a grant the log never issued, and later one it did issue
	forged := appendFact(t, e.st, opened("c1", "g-forged"))
	appendFact(t, e.st, domain.OAuthCompleted{Owner: "carol", Server: "gh", GrantID: "g-real", Issuer: "https://as"})
	carolIn := opened("c2", "g-real")
	carolIn.Inputs.Owner = "carol"
	_, carolView, _ := e.servers.Effective("carol", "gh")
	carolIn.Inputs.Config = carolView
	appendFact(t, e.st, carolIn)
	// and bob cites carol's grant
	bobIn := opened("c3", "g-real")
	bobIn.Inputs.Owner = "bob"
	_, bobView, _ := e.servers.Effective("bob", "gh")
	bobIn.Inputs.Config = bobView
	stolen := appendFact(t, e.st, bobIn)

	// then replay reports the forged and the stolen grant, and only those
	rep, err := ReplayDecisions(ctxT(t), e.st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, m := range rep.Mismatches {
		got[m.Position] = true
	}
	if len(got) != 2 || !got[forged] || !got[stolen] {
		t.Fatalf("mismatches %v, want positions %d and %d", rep.Mismatches, forged, stolen)
	}
}
