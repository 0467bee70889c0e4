package handlers_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/store/bolt"
)

func TestPutServer_IfNoneMatchAndIfMatch(t *testing.T) {
	s := newSvc(t)
	cfg := map[string]any{"type": "streamable-http", "url": "https://files.example.com/mcp", "startup": false}
	createOnly := http.Header{"If-None-Match": {"*"}}

	// given no server, when it is created only if absent, then it is, with ETag "1"
	r := s.doWith("PUT", "/v1/servers/files", adminToken, cfg, createOnly)
	expect(t, r, http.StatusCreated, "")
	if got := r.header.Get("ETag"); got != `"1"` {
		t.Fatalf("ETag %q", got)
	}
	// when it is created only if absent again, then 412 and nothing changes
	expect(t, s.doWith("PUT", "/v1/servers/files", adminToken, cfg, createOnly), http.StatusPreconditionFailed, handlers.CodePreconditionFailed)

	// when it is changed only at the version GET gave, then it is, once
	tag := s.do("GET", "/v1/servers/files", adminToken, nil).header.Get("ETag")
	cfg["url"] = "https://files2.example.com/mcp"
	r = s.doWith("PUT", "/v1/servers/files", adminToken, cfg, http.Header{"If-Match": {tag}})
	expect(t, r, http.StatusOK, "")
	if got := r.header.Get("ETag"); got != `"2"` {
		t.Fatalf("ETag after the change %q", got)
	}
	cfg["url"] = "https://files3.example.com/mcp"
	expect(t, s.doWith("PUT", "/v1/servers/files", adminToken, cfg, http.Header{"If-Match": {tag}}), http.StatusPreconditionFailed, handlers.CodePreconditionFailed)

	// and a malformed precondition is a bad request
	for _, h := range []http.Header{{"If-Match": {"soon"}}, {"If-None-Match": {`"1"`}}, {"If-Match": {`"1"`}, "If-None-Match": {"*"}}} {
		expect(t, s.doWith("PUT", "/v1/servers/files", adminToken, cfg, h), http.StatusBadRequest, handlers.CodeInvalidRequest)
	}
}

func TestPutServer_TwoWritersRacingToCreateOneWins(t *testing.T) {
	t.Run("memory", func(t *testing.T) { raceToCreate(t, newSvc(t)) })
	t.Run("bolt", func(t *testing.T) {
		st, err := bolt.Open(filepath.Join(t.TempDir(), "mcpes.db"), bolt.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		raceToCreate(t, newSvcOn(t, st, true))
	})
}

func raceToCreate(t *testing.T, s *svc) {
	for round := range 20 {
		// given two writers creating one name at once, each only if absent
		name := fmt.Sprintf("/v1/servers/race%d", round)
		var wg sync.WaitGroup
		codes := make([]int, 2)
		for w := range 2 {
			cfg := map[string]any{"type": "streamable-http", "url": fmt.Sprintf("https://w%d.example.com/mcp", w), "startup": false}
			wg.Go(func() { codes[w] = s.doWith("PUT", name, adminToken, cfg, http.Header{"If-None-Match": {"*"}}).status })
		}
		wg.Wait()
		// then exactly one created it and the other was told it exists
		if !(codes[0] == 201 && codes[1] == 412 || codes[0] == 412 && codes[1] == 201) {
			t.Fatalf("round %d: statuses %v, want one 201 and one 412", round, codes)
		}
	}
}
