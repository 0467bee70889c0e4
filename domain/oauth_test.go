package domain_test

import (
	"testing"

	"github.com/mcpes/mcpes/domain"
)

func TestDecideGet_OAuthGrant(t *testing.T) {
	oauthCfg := domain.ConfigView{Found: true, Scope: domain.UserScope("alice"), Version: 7, RequiresOAuth: true}
	base := domain.DecisionInputs{Owner: "alice", Server: "gh", Config: oauthCfg, ExistingState: domain.ConnNone}
	cases := []struct {
		name  string
		in    func(domain.DecisionInputs) domain.DecisionInputs
		want  domain.Decision
		hasOK bool
	}{
		{"no grant refuses", func(in domain.DecisionInputs) domain.DecisionInputs {
			in.OAuth = domain.GrantInputs{Checked: true}
			return in
		}, domain.Decision{Action: domain.ActionRefuse, Rule: domain.RuleNoGrant}, false},
		{"grant connects", func(in domain.DecisionInputs) domain.DecisionInputs {
			in.OAuth = domain.GrantInputs{Checked: true, Grant: "g1"}
			return in
		}, domain.Decision{Action: domain.ActionConnect, Rule: domain.RuleAllowed}, true},
		{"revoked grant evicts the open connection", func(in domain.DecisionInputs) domain.DecisionInputs {
			in.OAuth = domain.GrantInputs{Checked: true, Existing: "g1"}
			in.ExistingState, in.ExistingVersion = domain.ConnAlive, 7
			return in
		}, domain.Decision{Action: domain.ActionRefuse, Rule: domain.RuleNoGrant, Evict: domain.EvictDisallowed}, false},
		{"new grant makes the connection stale", func(in domain.DecisionInputs) domain.DecisionInputs {
			in.OAuth = domain.GrantInputs{Checked: true, Grant: "g2", Existing: "g1"}
			in.ExistingState, in.ExistingVersion = domain.ConnAlive, 7
			return in
		}, domain.Decision{Action: domain.ActionConnect, Rule: domain.RuleAllowed, Evict: domain.EvictStale}, true},
		{"same grant reuses", func(in domain.DecisionInputs) domain.DecisionInputs {
			in.OAuth = domain.GrantInputs{Checked: true, Grant: "g1", Existing: "g1"}
			in.ExistingState, in.ExistingVersion = domain.ConnAlive, 7
			return in
		}, domain.Decision{Action: domain.ActionReuse, Rule: domain.RuleAllowed}, true},
		{"decisions recorded before grants replay unchanged", func(in domain.DecisionInputs) domain.DecisionInputs {
			return in
		}, domain.Decision{Action: domain.ActionConnect, Rule: domain.RuleAllowed}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in(base)
			if got := domain.DecideGet(in); got != c.want {
				t.Errorf("DecideGet = %+v, want %+v", got, c.want)
			}
			if got := domain.DecideHas(in); (got.Action != domain.ActionRefuse) != c.hasOK {
				t.Errorf("DecideHas = %+v, want allowed %t", got, c.hasOK)
			}
		})
	}
}
