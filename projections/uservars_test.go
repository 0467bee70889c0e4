package projections

import (
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// foldFacts folds facts into s as consecutive log positions from first.
func foldFacts(tb testing.TB, s *Servers, first uint64, facts ...any) {
	tb.Helper()
	for i, f := range facts {
		env, err := events.New(f, events.Meta{ID: "id", Source: "mcpes://t", Time: time.Unix(1, 0), Actor: "admin"})
		if err != nil {
			tb.Fatal(err)
		}
		ev := &rawEvent{typ: env.Type, subject: env.Subject, data: env.Data, pos: first + uint64(i)}
		if err := s.foldEvent(ev); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestServers_UserVars_MissingNamesVersionAndCatalogue(t *testing.T) {
	// given an on-demand app server needing a key and the email profile attribute
	cfg := domain.ServerConfig{Type: "streamable-http", URL: "https://a/{{KEY}}",
		Headers:        map[string]string{"X-Mail": "{{LIBRECHAT_USER_EMAIL}}"},
		CustomUserVars: map[string]domain.CustomUserVar{"KEY": {Title: "k", Description: "d"}}}
	s := NewServers()
	foldFacts(t, s, 1, domain.ServerRegistered{Scope: domain.AppScope, Name: "srv", Config: cfg})

	// then alice misses both, the shared view needs no values (it never connects it)
	if v, _ := s.View("alice", "srv"); v.MissingUserVars != "KEY, LIBRECHAT_USER_EMAIL" || v.Version != 1 {
		t.Fatalf("alice view %+v", v)
	}
	if v, _ := s.View("", "srv"); v.MissingUserVars != "" || !v.CustomUserVars {
		t.Fatalf("shared view %+v", v)
	}

	// when alice sets her key and the admin her email
	foldFacts(t, s, 2,
		domain.UserVarsChanged{Owner: "alice", Server: "srv", Set: []string{"KEY"}},
		domain.OwnerProfileChanged{Owner: "alice", Set: []string{"EMAIL"}},
		domain.OwnerInspected{Owner: "alice", Inspection: domain.ServerInspected{Scope: domain.AppScope, Name: "srv", ConfigVersion: 1,
			Tools: []domain.Tool{{Name: "echo"}}}})

	// then nothing is missing for her, her view's version moved past the config's,
	// and bob's view did not move
	v, _ := s.View("alice", "srv")
	if v.MissingUserVars != "" || v.Version != 3 {
		t.Fatalf("alice view after %+v", v)
	}
	if b, _ := s.View("bob", "srv"); b.Version != 1 || b.MissingUserVars == "" {
		t.Fatalf("bob view %+v", b)
	}
	// and alice's catalogue is her inspection, bob has none, the shared state none
	if c := s.Catalogue("alice", domain.AppScope, "srv"); c == nil || c.Tools[0].Name != "echo" {
		t.Fatalf("alice catalogue %+v", c)
	}
	if s.Catalogue("bob", domain.AppScope, "srv") != nil || s.Catalogue("", domain.AppScope, "srv") != nil {
		t.Fatal("catalogue leaked beyond alice")
	}
	// and a snapshot round trip keeps all of it
	vars, profiles := s.ownerNames()
	r := NewServers()
	r.restoreOwnerNames(vars, profiles)
	for _, o := range s.ownedInspections() {
		r.setOwnerInspection(o.Owner, o.Server, o.Inspection)
	}
	if len(r.UserVarsSet("alice", "srv")) != 1 || len(r.ProfileSet("alice")) != 1 {
		t.Fatal("snapshot lost names")
	}
	if _, ok := r.OwnerInspection("alice", "srv"); !ok {
		t.Fatal("snapshot lost the owner inspection")
	}
}
