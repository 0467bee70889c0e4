package connections

import (
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
)

func TestRepository_JanitorDropsEntriesLeftWithoutConnection(t *testing.T) {
	// given a user repository with a fast janitor, one connection kept and one
	// disconnected (its entry has nothing left: no connection, breaker closed)
	srv := newMCPServer(t)
	e := newEnv(t, func(o *Options) { o.IdleCheck = 5 * time.Millisecond })
	for _, n := range []string{"kept", "gone"} {
		e.put(domain.AppScope, n, httpConfig(srv.URL))
	}
	alice := e.m.Repo("alice")
	for _, n := range []string{"kept", "gone"} {
		if _, err := alice.Get(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.Disconnect(ctxT(t), "gone"); err != nil {
		t.Fatal(err)
	}

	// when the janitor ticks
	// then the empty entry is dropped and the connected one stays
	eventually(t, "the empty entry pruned", func() bool { return alice.lookup("gone") == nil })
	if alice.lookup("kept") == nil || alice.Count() != 1 {
		t.Fatalf("kept entry: %v, count %d", alice.lookup("kept"), alice.Count())
	}
}
