package connections

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/examples/servers/clock/clockserver"
)

func TestRepository_FlappingServer_BreakerOpensThenRecovers(t *testing.T) {
	// given a server that is down
	var down atomic.Bool
	down.Store(true)
	h := server.NewStreamableHTTPServer(clockserver.New())
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	e := newEnv(t, func(o *Options) {
		o.BackoffBase = 100 * time.Millisecond
		o.BackoffMax = 200 * time.Millisecond
	})
	e.put(domain.UserScope("alice"), "flap", httpConfig(ts.URL+"/mcp"))
	repo := e.m.Repo("alice")

	// when it is asked for while down, at once again, and after it came back
	_, err1 := repo.Get(ctxT(t), "flap")
	_, err2 := repo.Get(ctxT(t), "flap")
	down.Store(false)
	var c *Connection
	eventually(t, "the breaker to let a connect through", func() bool {
		var err error
		c, err = repo.Get(ctxT(t), "flap")
		return err == nil
	})

	// then the first failed, the second was refused by the breaker without a dial,
	// and the half-open attempt succeeded and closed the breaker
	var ce *ConnectError
	var re *RefusedError
	if !errors.As(err1, &ce) || !errors.As(err2, &re) || re.Rule != domain.RuleBreakerOpen {
		t.Fatalf("errors: %v / %v", err1, err2)
	}
	echo(t, c, "back")
	got := kinds(e.facts("alice", "flap"))
	if got[0] != "open_failed" || got[1] != "refused/breaker_open" || got[len(got)-1] != "opened" {
		t.Fatalf("events %v", got)
	}
	if d := e.dials.Load(); d < 2 || d > 3 {
		t.Fatalf("%d dials", d)
	}
	opened := e.facts("alice", "flap")[len(got)-1].(domain.ConnectionOpened)
	if opened.Inputs.BreakerOpen {
		t.Fatal("opened with the breaker recorded open")
	}
}

func TestRepository_DecisionEvents_CarryActorAndCorrelation(t *testing.T) {
	srv := newMCPServer(t)
	e := newEnv(t, nil)
	e.put(domain.UserScope("alice"), "clock", httpConfig(srv.URL))
	ctx := WithCorrelationID(WithActor(ctxT(t), "owner:alice"), "req-42")
	if _, err := e.m.Repo("alice").Get(ctx, "clock"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Repo("alice").Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	for _, name := range []string{"clock", "nope"} {
		evs, err := e.st.ReadStream(ctx, domain.ConnStream("alice", name), 1, 0)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", name, evs, err)
		}
		if evs[0].Actor != "owner:alice" || evs[0].CorrelationID != "req-42" || evs[0].Source != "mcpes://test" {
			t.Fatalf("%s envelope: actor %q, correlation %q, source %q", name, evs[0].Actor, evs[0].CorrelationID, evs[0].Source)
		}
	}
}
