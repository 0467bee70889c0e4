package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// decisionLog builds a log of real decisions by a real connection manager against a
// real MCP server: a first connect, a stale eviction and reconnect, a refusal of the
// shared repository (startup_false), a failed connect, and a disallowed eviction
// followed by a refusal (inspection_failed).
func decisionLog(tb testing.TB) store.Store {
	tb.Helper()
	w := newWorld(tb)
	url := clockURL(tb)
	no := false
	v := w.register("admin", domain.AppScope, "clock", url)
	mustGet(tb, w, "alice", "clock")
	cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: url, InitTimeoutMS: 6000,
		Headers: map[string]string{"X-Api-Key": testSecretRef}}
	v2 := w.append("admin", domain.ServerConfigChanged{Scope: domain.AppScope, Name: "clock", Config: cfg, Changed: []string{"initTimeout"}})
	tools := []domain.Tool{{Name: "now"}, {Name: "echo"}}
	w.append("system", domain.ServerInspected{Scope: domain.AppScope, Name: "clock", ConfigVersion: v2 - v + 1,
		Tools: tools, Digest: domain.CatalogueDigest(tools), Capabilities: domain.Capabilities{Tools: true}})
	mustGet(tb, w, "alice", "clock") // evicted stale, opened replacing it
	nostart := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: url, Startup: &no}
	w.append("admin", domain.ServerRegistered{Scope: domain.AppScope, Name: "nostart", Config: nostart})
	if _, err := w.get("system", "", "nostart"); err == nil {
		tb.Fatal("shared repository connected a startup: false server")
	}
	w.register("admin", domain.AppScope, "dead", "http://127.0.0.1:1/mcp")
	if _, err := w.get("system", "alice", "dead"); err == nil {
		tb.Fatal("connected to a dead server")
	}
	mustGet(tb, w, "bob", "clock")
	w.append("system", domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "clock", ConfigVersion: 2,
		Class: domain.FailureUnreachable, Message: "gone"})
	if _, err := w.get("system", "bob", "clock"); err == nil {
		tb.Fatal("bob connected to a failed server")
	}
	// (the failed inspection evicted every clock connection at once; carol's to
	// nostart is still open at shutdown)
	mustGet(tb, w, "carol", "nostart")
	w.closeManager()
	return w.st
}

func mustGet(tb testing.TB, w *world, owner, name string) {
	tb.Helper()
	if _, err := w.get("system", owner, name); err != nil {
		tb.Fatalf("get %s for %q: %v", name, owner, err)
	}
}

// forgery rewrites the data or envelope of the one event match selects.
type forgery struct {
	says  string // what the problem must say, when the position alone is not enough
	match func(e events.Envelope, fact any) bool
	forge func(e *events.Envelope, fact any) any
}

// reseal copies every event of src into a fresh store, in order, rewriting the one
// event f matches; the new store re-seals the chain, so the copy's hash chain is
// intact and only decision replay can notice. It returns the copy and the position
// of the forged event.
func reseal(tb testing.TB, src store.Store, f *forgery) (store.Store, uint64) {
	tb.Helper()
	ctx := context.Background()
	dst := memory.New()
	tb.Cleanup(func() { _ = dst.Close() })
	var forged uint64
	for from := uint64(1); ; {
		page, err := src.ReadAll(ctx, from, 512)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if f != nil && forged == 0 {
				fact, err := events.Decode(e)
				if err != nil {
					tb.Fatal(err)
				}
				if f.match(e, fact) {
					forged = uint64(e.Sequence)
					before := e
					out := f.forge(&e, fact)
					if reflect.DeepEqual(out, fact) && reflect.DeepEqual(e, before) {
						tb.Fatalf("the forgery changed nothing at position %d: the case proves nothing", forged)
					}
					typ, err := events.TypeName(out)
					if err != nil {
						tb.Fatal(err)
					}
					if e.Data, err = json.Marshal(out); err != nil {
						tb.Fatal(err)
					}
					e.Type = typ
				}
			}
			e.Hash, e.PrevHash, e.Sequence, e.StreamVersion = "", "", 0, 0
			if _, err := dst.Append(ctx, e.Subject, store.AnyVersion, e); err != nil {
				tb.Fatalf("re-append %d: %v", from, err)
			}
		}
		from = uint64(page[len(page)-1].Sequence) + 1
	}
	if f != nil && forged == 0 {
		tb.Fatal("no event matched the forgery")
	}
	return dst, forged
}

func readAll(tb testing.TB, st store.Store) []events.Envelope {
	tb.Helper()
	evs, err := st.ReadAll(context.Background(), 1, 1<<20)
	if err != nil {
		tb.Fatal(err)
	}
	return evs
}

func decodeFact(tb testing.TB, e events.Envelope) any {
	tb.Helper()
	fact, err := events.Decode(e)
	if err != nil {
		tb.Fatal(err)
	}
	return fact
}

func is[T any](n int, pred func(T) bool) func(events.Envelope, any) bool {
	seen := 0
	return func(_ events.Envelope, fact any) bool {
		f, ok := fact.(T)
		if !ok || !pred(f) {
			return false
		}
		seen++
		return seen == n
	}
}

func TestVerifyAll_ResealedCopyOfRealDecisionsIsClean(t *testing.T) {
	// given a log of real decisions, copied and re-sealed without any change
	st, _ := reseal(t, decisionLog(t), nil)

	// when it is verified
	rep, err := audit.VerifyAll(context.Background(), st, nil)

	// then it is clean, with every kind of decision replayed
	if err != nil || !rep.OK {
		t.Fatalf("report %+v, %v", rep, err)
	}
	if rep.Decisions < 9 {
		t.Fatalf("%d decisions replayed, want the scenario's 9 or more", rep.Decisions)
	}
}

// TestVerifyAll_ForgedDecisionFieldInResealedChain forges one recorded input or output
// of one real decision, keeping everything else about it consistent (the envelope's
// reason follows a forged rule), re-seals the chain, and expects verify to name the
// forged position. Each case is guarded by one comparison of the decision replay.
func TestVerifyAll_ForgedDecisionFieldInResealedChain(t *testing.T) {
	src := decisionLog(t)
	anyOpened := func(domain.ConnectionOpened) bool { return true }
	var alicesConn string // the connection alice holds when bob connects
	for _, e := range readAll(t, src) {
		if f, ok := decodeFact(t, e).(domain.ConnectionOpened); ok && f.Inputs.Owner == "alice" {
			alicesConn = f.ConnID
		}
	}
	cases := map[string]forgery{
		"refusal rule": {
			match: is(1, func(f domain.ConnectionRefused) bool { return f.Rule == domain.RuleStartupDisabled }),
			forge: func(e *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionRefused)
				f.Rule, e.Reason = domain.RuleRequiresOAuth, string(domain.RuleRequiresOAuth)
				return f
			},
		},
		"verdict: a failed connect recorded as a refusal": {
			match: is(1, func(domain.ConnectionOpenFailed) bool { return true }),
			forge: func(e *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpenFailed)
				e.Reason = string(domain.RuleAllowed)
				return domain.ConnectionRefused{Inputs: f.Inputs, Rule: domain.RuleAllowed, Count: 1}
			},
		},
		"verdict: a replacing connect recorded as a plain one": {
			match: is(1, func(f domain.ConnectionOpened) bool { return f.Replaced != "" }),
			forge: func(e *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpened)
				f.Replaced, e.Reason = "", ""
				return f
			},
		},
		"config view": {
			match: is(1, anyOpened),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpened)
				f.Inputs.Config.Version += 7
				return f
			},
		},
		"position read": {
			says:  "a position before the decision",
			match: is(2, anyOpened),
			forge: func(e *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpened)
				f.Inputs.Position = uint64(e.Sequence) + 1
				return f
			},
		},
		"existing connection of a refusal": {
			match: is(1, func(f domain.ConnectionRefused) bool { return f.Rule == domain.RuleInspectionFailed }),
			forge: func(_ *events.Envelope, fact any) any {
				// the world's timing decides whether a connection was open then: flip
				// what the refusal saw either way, so the forgery is never a no-op
				f := fact.(domain.ConnectionRefused)
				if f.Inputs.ExistingState == domain.ConnNone {
					f.Inputs.ExistingState, f.Inputs.ExistingVersion = domain.ConnAlive, 1
				} else {
					f.Inputs.ExistingState, f.Inputs.ExistingVersion = domain.ConnNone, 0
				}
				return f
			},
		},
		"existing connection of a connect": {
			match: is(1, func(f domain.ConnectionOpened) bool { return f.Replaced != "" }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpened)
				f.Inputs.ExistingState = domain.ConnDead // still stale first, so the verdict holds
				return f
			},
		},
		"existing version of an eviction": {
			match: is(1, func(f domain.ConnectionEvicted) bool { return f.Reason == domain.EvictStale }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionEvicted)
				f.Inputs.ExistingVersion++
				return f
			},
		},
		"eviction reason": {
			match: is(1, func(f domain.ConnectionEvicted) bool { return f.Reason == domain.EvictStale }),
			forge: func(e *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionEvicted)
				f.Reason, e.Reason = domain.EvictDisallowed, string(domain.EvictDisallowed)
				return f
			},
		},
		"eviction rule left out": {
			match: is(1, func(f domain.ConnectionEvicted) bool { return f.Reason == domain.EvictDisallowed }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionEvicted)
				f.Rule = ""
				return f
			},
		},
		"envelope reason": {
			match: is(1, func(f domain.ConnectionOpened) bool { return f.Replaced != "" }),
			forge: func(e *events.Envelope, fact any) any {
				e.Reason = string(domain.EvictIdle)
				return fact
			},
		},
		"owner of a decision not the owner of its stream": {
			match: is(1, func(f domain.ConnectionRefused) bool { return f.Rule == domain.RuleInspectionFailed }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionRefused)
				f.Inputs.Owner = "carol" // same view, same verdict as bob's
				return f
			},
		},
		"verdict: a connect the breaker would have refused": {
			match: is(1, func(domain.ConnectionOpenFailed) bool { return true }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpenFailed)
				f.Inputs.BreakerOpen = true
				return f
			},
		},
		"connection id of a connect already open": {
			match: is(3, anyOpened),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionOpened)
				f.ConnID = alicesConn
				return f
			},
		},
		"rule on a shutdown eviction": {
			match: is(1, func(f domain.ConnectionEvicted) bool { return f.Reason == domain.EvictShutdown }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionEvicted)
				f.Rule = domain.RuleAllowed
				return f
			},
		},
		"refusal count": {
			match: is(1, func(f domain.ConnectionRefused) bool { return f.Rule == domain.RuleStartupDisabled }),
			forge: func(_ *events.Envelope, fact any) any {
				f := fact.(domain.ConnectionRefused)
				f.Count = 0
				return f
			},
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			// given a re-sealed copy of the log with one decision field forged
			st, pos := reseal(t, src, &f)

			// when it is verified
			rep, err := audit.VerifyAll(context.Background(), st, nil)
			if err != nil {
				t.Fatal(err)
			}

			// then the chain holds but verify fails, naming the forged decision
			want := fmt.Sprintf("decision: position %d ", pos)
			found := false
			for _, p := range rep.Problems {
				if strings.HasPrefix(p, "chain") {
					t.Fatalf("re-sealed chain reported broken: %v", rep.Problems)
				}
				found = found || (strings.HasPrefix(p, want) && strings.Contains(p, f.says))
			}
			if rep.OK || !found {
				t.Fatalf("report %+v, want a problem starting %q saying %q", rep, want, f.says)
			}
			t.Logf("%v", rep.Problems)
		})
	}
}

func TestVerifyAll_DecisionThatReadBeforeALaterConfigChange(t *testing.T) {
	ctx := context.Background()
	for _, forged := range []bool{false, true} {
		t.Run(fmt.Sprintf("forged=%t", forged), func(t *testing.T) {
			// given a decision that read the projection before a config change of its
			// server was appended (two writers racing), recorded after it
			w := newWorld(t)
			w.register("admin", domain.AppScope, "clock", "http://127.0.0.1:1/mcp")
			_, view, read := w.servers.Effective("alice", "clock")
			cfg := domain.ServerConfig{Type: domain.TransportStreamableHTTP, URL: "http://127.0.0.1:1/mcp", InitTimeoutMS: 9000}
			w.append("admin", domain.ServerConfigChanged{Scope: domain.AppScope, Name: "clock", Config: cfg, Changed: []string{"initTimeout"}})
			in := domain.DecisionInputs{Owner: "alice", Server: "clock", Position: read, Config: view, ExistingState: domain.ConnNone}
			if forged {
				in.Config.Version++ // what the later config says, not what was read
			}
			pos := w.append("system", domain.ConnectionOpened{Inputs: in, ConnID: "c-1"})

			// when it is verified
			rep, err := audit.VerifyAll(ctx, w.st, nil)
			if err != nil {
				t.Fatal(err)
			}

			// then the view is compared at the position it read: as recorded it holds,
			// forged it is named
			want := fmt.Sprintf("decision: position %d ", pos)
			if forged != (!rep.OK && len(rep.Problems) == 1 && strings.HasPrefix(rep.Problems[0], want) && strings.Contains(rep.Problems[0], "config")) {
				t.Fatalf("report %+v", rep)
			}
			if !forged && !rep.OK {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}
