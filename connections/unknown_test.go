package connections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/upstream"
)

func TestRepository_UnknownNamesAreCoalescedPerOwner(t *testing.T) {
	// given alice's repository with a long refusal window (so only the clock of the
	// test decides when it closes) and a log holding nothing of hers
	e := newEnv(t, func(o *Options) { o.RefusalWindow = time.Hour })
	repo := e.m.Repo("alice")
	before := e.head()

	// when she asks for 5,000 distinct names that do not exist
	for i := range 5000 {
		_, err := repo.Get(ctxT(t), fmt.Sprintf("nope-%d", i))
		var rerr *RefusedError
		if !errors.As(err, &rerr) || rerr.Rule != domain.RuleNoConfig {
			t.Fatalf("get nope-%d: %v, want refused no_config", i, err)
		}
	}
	repo.flushAll(context.Background())

	// then two events are written (the first refusal, then the window's repeats), not
	// 5,000; they account for every refusal; and no per-name state was kept
	facts := e.factsSince(before)
	if len(facts) != 2 {
		t.Fatalf("%d events for 5,000 unknown names, want 2: %v", len(facts), kinds(facts[:min(len(facts), 5)]))
	}
	first, rest := facts[0].(domain.ConnectionRefused), facts[1].(domain.ConnectionRefused)
	if first.Count != 1 || rest.Count != 4999 || first.Count+rest.Count != 5000 {
		t.Fatalf("counts %d + %d, want 1 + 4999", first.Count, rest.Count)
	}
	if rest.Servers != maxUnknownNames+1 || rest.Inputs.Server != "nope-4999" || rest.Rule != domain.RuleNoConfig {
		t.Fatalf("coalesced event %+v", rest)
	}
	if n := len(repo.snapshot()); n != 0 {
		t.Fatalf("%d entries kept for unknown names", n)
	}
}

func TestRepository_UnknownRefusalsFlushBeforeTheNextDecision(t *testing.T) {
	// given alice was refused two unknown names inside one window
	srv := newMCPServer(t)
	e := newEnv(t, func(o *Options) { o.RefusalWindow = time.Hour })
	repo := e.m.Repo("alice")
	for _, n := range []string{"ghost", "ghost", "ghost"} {
		if _, err := repo.Get(ctxT(t), n); err == nil {
			t.Fatal("unknown name connected")
		}
	}
	// when the name then exists and she connects
	e.put(domain.UserScope("alice"), "ghost", httpConfig(srv.URL))
	if _, err := repo.Get(ctxT(t), "ghost"); err != nil {
		t.Fatal(err)
	}
	// then the counted repeats come before the open on her stream
	if got := strings.Join(kinds(e.facts("alice", "ghost")), " "); got != "refused/no_config refused/no_configx2 opened" {
		t.Fatalf("stream: %s", got)
	}
}

func TestRepository_OwnerNeverSeesAppServerStderr(t *testing.T) {
	// given an app stdio server that prints a secret to stderr and exits
	e := newEnv(t, func(o *Options) { o.Upstream.Guard = &upstream.Guard{} })
	e.put(domain.AppScope, "leaky", domain.ServerConfig{Command: "/bin/sh",
		Args: []string{"-c", "echo TOPSECRET-TOKEN >&2; exit 3"}, InitTimeoutMS: 5000})

	// when alice connects to it, and the shared repository does
	_, aerr := e.m.Repo("alice").Get(ctxT(t), "leaky")
	_, serr := e.m.Repo("").Get(ctxT(t), "leaky")

	// then alice's error and her stream say the class only; the operator's keep stderr
	if aerr == nil || strings.Contains(aerr.Error(), "TOPSECRET") || !strings.Contains(aerr.Error(), "operator has the details") {
		t.Fatalf("alice's error: %v", aerr)
	}
	for _, f := range e.facts("alice", "leaky") {
		if of, ok := f.(domain.ConnectionOpenFailed); ok && strings.Contains(of.Message, "TOPSECRET") {
			t.Fatalf("alice's stream carries stderr: %q", of.Message)
		}
	}
	if serr == nil || !strings.Contains(serr.Error(), "TOPSECRET") {
		t.Fatalf("shared error lost the detail: %v", serr)
	}
}

func (e *env) head() uint64 {
	e.tb.Helper()
	h, _, err := e.st.Head(context.Background())
	if err != nil {
		e.tb.Fatal(err)
	}
	return h
}

// factsSince returns the decoded facts appended after position pos, in order.
func (e *env) factsSince(pos uint64) []any {
	e.tb.Helper()
	evs, err := e.st.ReadAll(context.Background(), pos+1, 0)
	if err != nil {
		e.tb.Fatal(err)
	}
	var out []any
	for _, ev := range evs {
		f, err := events.Decode(ev)
		if err != nil {
			e.tb.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}
