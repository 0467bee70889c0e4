package handlers_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpes/mcpes/audit"
)

func TestAudit_OwnerExportWithProofsVerifiesWithThePublicKey(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)
	skey, vkey, err := note.GenerateKey(rand.Reader, "mcpes.test/log")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := audit.ParseSigningKey(skey)
	v, _ := note.NewVerifier(vkey)

	// given alice's and bob's servers and connections, and a signed checkpoint
	for _, tok := range []string{aliceToken, bobToken} {
		expect(t, s.do("PUT", "/v1/servers/notes", tok, httpCfg(clock.URL)), http.StatusCreated, "")
		expect(t, s.do("POST", "/v1/connections/notes", tok, nil), http.StatusOK, "")
	}
	expect(t, s.do("GET", "/v1/audit/export?proofs=1", aliceToken, nil), http.StatusNotFound, "not_found")
	cp, _, err := audit.NewCheckpointer(s.st, k.Signer, audit.CheckpointerOptions{}).Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// when alice exports her history with proofs (asking for bob's is ignored)
	r := s.do("GET", "/v1/audit/export?proofs=1&owner=bob", aliceToken, nil)
	expect(t, r, http.StatusOK, "")

	// then it holds only her events, each proven in the checkpoint with the public key
	if strings.Contains(string(r.body), "bob") || !strings.Contains(string(r.body), "alice") {
		t.Fatalf("alice's export:\n%s", string(r.body))
	}
	opened, err := audit.OpenCheckpoint([]byte(cp.Note), v)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyExcerpt(strings.NewReader(string(r.body)), opened)
	if err != nil || !rep.OK || rep.Events < 3 || rep.Proven != rep.Events {
		t.Fatalf("report %+v %v", rep, err)
	}
	// and without proofs the lines are the log's own events
	plain := s.do("GET", "/v1/audit/export", bobToken, nil)
	expect(t, plain, http.StatusOK, "")
	if strings.Contains(string(plain.body), "alice") || strings.Count(string(plain.body), "\n") != rep.Events {
		t.Fatalf("bob's export:\n%s", string(plain.body))
	}
}
