package domain

import "testing"

var okView = ConfigView{Found: true, Scope: AppScope, Version: 7, Startup: true}

func with(f func(*ConfigView)) ConfigView {
	v := okView
	f(&v)
	return v
}

func TestMayConnect_EveryRule(t *testing.T) {
	for name, tc := range map[string]struct {
		owner string
		view  ConfigView
		ok    bool
		rule  Rule
	}{
		"shared, plain app server":      {"", okView, true, RuleAllowed},
		"user, plain app server":        {"alice", okView, true, RuleAllowed},
		"shared, no config":             {"", ConfigView{}, false, RuleNoConfig},
		"user, no config":               {"alice", ConfigView{}, false, RuleNoConfig},
		"shared, inspection failed":     {"", with(func(v *ConfigView) { v.InspectionFailed = true }), false, RuleInspectionFailed},
		"user, inspection failed":       {"alice", with(func(v *ConfigView) { v.InspectionFailed = true }), false, RuleInspectionFailed},
		"shared, startup false":         {"", with(func(v *ConfigView) { v.Startup = false }), false, RuleStartupDisabled},
		"user, startup false":           {"alice", with(func(v *ConfigView) { v.Startup = false }), true, RuleAllowed},
		"shared, requires OAuth":        {"", with(func(v *ConfigView) { v.RequiresOAuth = true }), false, RuleRequiresOAuth},
		"user, requires OAuth":          {"alice", with(func(v *ConfigView) { v.RequiresOAuth = true }), true, RuleAllowed},
		"shared, custom user vars":      {"", with(func(v *ConfigView) { v.CustomUserVars = true }), false, RuleCustomUserVars},
		"user, custom user vars":        {"alice", with(func(v *ConfigView) { v.CustomUserVars = true }), true, RuleAllowed},
		"failed wins over startup rule": {"", with(func(v *ConfigView) { v.InspectionFailed, v.Startup = true, false }), false, RuleInspectionFailed},
	} {
		t.Run(name, func(t *testing.T) {
			ok, rule := MayConnect(tc.owner, tc.view)
			if ok != tc.ok || rule != tc.rule {
				t.Fatalf("MayConnect = %v, %s; want %v, %s", ok, rule, tc.ok, tc.rule)
			}
		})
	}
}

func TestDecideGet(t *testing.T) {
	in := func(existing ConnState, version uint64, view ConfigView, breaker bool) DecisionInputs {
		return DecisionInputs{Owner: "alice", Server: "files", Position: 9, Config: view, ExistingState: existing, ExistingVersion: version, BreakerOpen: breaker}
	}
	stale := func(in DecisionInputs) DecisionInputs { in.StaleNode = true; return in }
	gone := ConfigView{}
	failed := with(func(v *ConfigView) { v.InspectionFailed = true })
	for name, tc := range map[string]struct {
		in   DecisionInputs
		want Decision
	}{
		"alive and fresh is reused":          {in(ConnAlive, 7, okView, false), Decision{Action: ActionReuse, Rule: RuleAllowed}},
		"alive reused even if breaker open":  {in(ConnAlive, 7, okView, true), Decision{Action: ActionReuse, Rule: RuleAllowed}},
		"none connects":                      {in(ConnNone, 0, okView, false), Decision{Action: ActionConnect, Rule: RuleAllowed}},
		"empty state counts as none":         {in("", 0, okView, false), Decision{Action: ActionConnect, Rule: RuleAllowed}},
		"stale is replaced":                  {in(ConnAlive, 3, okView, false), Decision{Action: ActionConnect, Rule: RuleAllowed, Evict: EvictStale}},
		"dead is replaced":                   {in(ConnDead, 7, okView, false), Decision{Action: ActionConnect, Rule: RuleAllowed, Evict: EvictDead}},
		"stale and dead counts as stale":     {in(ConnDead, 3, okView, false), Decision{Action: ActionConnect, Rule: RuleAllowed, Evict: EvictStale}},
		"disallowed evicts and refuses":      {in(ConnAlive, 7, failed, false), Decision{Action: ActionRefuse, Rule: RuleInspectionFailed, Evict: EvictDisallowed}},
		"removed evicts and refuses":         {in(ConnAlive, 7, gone, false), Decision{Action: ActionRefuse, Rule: RuleNoConfig, Evict: EvictRemoved}},
		"not allowed, nothing to evict":      {in(ConnNone, 0, failed, false), Decision{Action: ActionRefuse, Rule: RuleInspectionFailed}},
		"breaker refuses a new connect":      {in(ConnNone, 0, okView, true), Decision{Action: ActionRefuse, Rule: RuleBreakerOpen}},
		"breaker: stale evicted, no connect": {in(ConnAlive, 3, okView, true), Decision{Action: ActionRefuse, Rule: RuleBreakerOpen, Evict: EvictStale}},
		"breaker: dead evicted, no connect":  {in(ConnDead, 7, okView, true), Decision{Action: ActionRefuse, Rule: RuleBreakerOpen, Evict: EvictDead}},
		"stale node refuses a new connect":   {stale(in(ConnNone, 0, okView, true)), Decision{Action: ActionRefuse, Rule: RuleStaleNode}},
		"stale node: dead evicted":           {stale(in(ConnDead, 7, okView, false)), Decision{Action: ActionRefuse, Rule: RuleStaleNode, Evict: EvictDead}},
		"stale node reuses an alive one":     {stale(in(ConnAlive, 7, okView, false)), Decision{Action: ActionReuse, Rule: RuleAllowed}},
		"stale node: policy refusal first":   {stale(in(ConnNone, 0, failed, false)), Decision{Action: ActionRefuse, Rule: RuleInspectionFailed}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := DecideGet(tc.in); got != tc.want {
				t.Fatalf("DecideGet = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecideHas(t *testing.T) {
	base := DecisionInputs{Owner: "", Server: "files", Config: okView, ExistingState: ConnAlive, ExistingVersion: 7}
	if d := DecideHas(base); d.Action != ActionReuse || d.Evict != "" {
		t.Fatalf("allowed: %+v", d)
	}
	base.Config = with(func(v *ConfigView) { v.RequiresOAuth = true })
	if d := DecideHas(base); d.Action != ActionRefuse || d.Rule != RuleRequiresOAuth || d.Evict != EvictDisallowed {
		t.Fatalf("oauth: %+v", d)
	}
	base.Config = ConfigView{}
	if d := DecideHas(base); d.Evict != EvictRemoved || d.Rule != RuleNoConfig {
		t.Fatalf("removed: %+v", d)
	}
	base.ExistingState = ConnNone
	if d := DecideHas(base); d.Evict != "" {
		t.Fatalf("nothing to evict: %+v", d)
	}
}

func TestIsStale_ComparesVersionsOnly(t *testing.T) {
	if IsStale(7, okView) || !IsStale(6, okView) || !IsStale(8, okView) {
		t.Fatal("IsStale must be connVersion != view.Version")
	}
}

func TestEffective_AppWins(t *testing.T) {
	app := given(ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg})
	private := ServerState{}.Apply(ServerRegistered{Scope: UserScope("alice"), Name: "files", Config: ServerConfig{URL: "https://mine"}}, 5, at0)
	for name, tc := range map[string]struct {
		app, private ServerState
		scope        Scope
		found        bool
		shadowed     bool
	}{
		"both: app wins, private shadowed": {app, private, AppScope, true, true},
		"app only":                         {app, ServerState{}, AppScope, true, false},
		"private only":                     {ServerState{}, private, UserScope("alice"), true, false},
		"neither":                          {ServerState{}, ServerState{}, "", false, false},
		"removed app: private shows":       {app.Apply(ServerRemoved{Scope: AppScope, Name: "files"}, 6, at0), private, UserScope("alice"), true, false},
	} {
		t.Run(name, func(t *testing.T) {
			st, v := Effective(tc.app, tc.private)
			if st.Scope != tc.scope || v.Found != tc.found || v.Shadowed != tc.shadowed || v.Scope != tc.scope {
				t.Fatalf("Effective = %s %+v", st.Scope, v)
			}
			if tc.found && v.Version != st.Version {
				t.Fatalf("view version %d, state %d", v.Version, st.Version)
			}
		})
	}
}

func TestServerState_View(t *testing.T) {
	no := false
	st := given(ServerRegistered{Scope: AppScope, Name: "x", Config: ServerConfig{URL: "https://a", Startup: &no,
		CustomUserVars: map[string]CustomUserVar{"K": {}}}})
	v := st.View()
	if !v.Found || v.Startup || !v.CustomUserVars || v.Version != 1 || v.Scope != AppScope {
		t.Fatalf("view %+v", v)
	}
}
