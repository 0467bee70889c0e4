package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/bolt"
)

func TestVerifyAll_CleanLog(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	url := clockURL(t)

	// given a log with registrations and real connection decisions
	w.register("admin", domain.AppScope, "clock", url)
	for _, owner := range []string{"", "alice", "bob"} {
		if _, err := w.get("system", owner, "clock"); err != nil {
			t.Fatalf("connect for %q: %v", owner, err)
		}
	}

	// when it is verified
	stages := map[string]bool{} // the two stages run side by side: their order is free
	rep, err := audit.VerifyAll(ctx, w.st, func(stage string, pos, head uint64) {
		stages[stage] = true
	})
	if err != nil {
		t.Fatal(err)
	}

	// then everything checks out, every event and decision counted
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Events != int(w.head()) || rep.Decisions != 3 {
		t.Fatalf("events %d (head %d), decisions %d, want 3", rep.Events, w.head(), rep.Decisions)
	}
	if len(stages) != 2 || !stages["chain"] || !stages["decisions"] {
		t.Fatalf("progress stages %v", stages)
	}
	b, _ := json.Marshal(rep)
	if !strings.HasPrefix(string(b), `{"ok":true,"events":`) || !strings.Contains(string(b), `"problems":[]`) {
		t.Fatalf("json %s", b)
	}
}

func TestVerifyAll_DecisionThatDoesNotReplay(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)

	// given a log whose last decision says "refused: startup_false" for an owner
	// repository, which that rule never applies to
	w.register("admin", domain.AppScope, "clock", "http://127.0.0.1:1/mcp")
	_, view, pos := w.servers.Effective("alice", "clock")
	env, err := events.New(domain.ConnectionRefused{Rule: domain.RuleStartupDisabled, Count: 1,
		Inputs: domain.DecisionInputs{Owner: "alice", Server: "clock", Position: pos, Config: view, ExistingState: domain.ConnNone}},
		events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test", Time: time.Now(), Actor: "system",
			Reason: string(domain.RuleStartupDisabled)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.st.Append(ctx, env.Subject, store.AnyVersion, env)
	if err != nil {
		t.Fatal(err)
	}
	bad := res.Positions[0]

	// when it is verified
	rep, err := audit.VerifyAll(ctx, w.st, nil)
	if err != nil {
		t.Fatal(err)
	}

	// then the chain is fine but the decision is reported as a mismatch
	if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "decision: position "+strconv.FormatUint(bad, 10)) {
		t.Fatalf("report %+v, want one mismatch at %d", rep, bad)
	}
}

func TestVerifyAll_TamperedBoltFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")

	// given a bolt log with a server whose URL is a marker, closed
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldOn(t, st, false)
	w.register("admin", domain.AppScope, "clock", "http://127.0.0.1:1/tamper-marker")
	w.register("admin", domain.AppScope, "other", "http://127.0.0.1:1/mcp")
	w.closeManager()
	clean, err := audit.VerifyAll(ctx, st, nil)
	if err != nil || !clean.OK {
		t.Fatalf("before tampering: %+v, %v", clean, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// when one byte of the stored event is flipped on disk
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The record may be on more than one page (bolt keeps freed copies): flip them all.
	n := 0
	for i := bytes.Index(raw, []byte("tamper-marker")); i >= 0; i = bytes.Index(raw, []byte("tamper-marker")) {
		raw[i] ^= 0x01 // 't' -> 'u'
		n++
	}
	if n == 0 {
		t.Fatal("marker not found in the bolt file")
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := audit.VerifyAll(ctx, ro, nil)
	if err != nil {
		t.Fatal(err)
	}

	// then verify fails, naming the broken chain at the first event
	if rep.OK || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "chain: position 1") {
		t.Fatalf("report %+v, want a chain problem at position 1", rep)
	}
}

func TestReplay_ToPastPositionAndHead(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	url := clockURL(t)

	// given alice's private clock, connected, then an app clock replacing it
	privVersion := w.register("owner:alice", domain.UserScope("alice"), "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatal(err)
	}
	mid := w.head()
	appVersion := w.register("admin", domain.AppScope, "clock", url)
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatal(err)
	}

	// when the log is replayed to the middle and to the head
	past, err := audit.Replay(ctx, w.st, mid, nil)
	if err != nil {
		t.Fatal(err)
	}
	now, err := audit.Replay(ctx, w.st, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// then the middle has one server and alice's connection to its version
	if past.Position != mid || len(past.Servers) != 1 || past.Servers[0].Scope != domain.UserScope("alice") {
		t.Fatalf("past %+v", past)
	}
	if len(past.Connections) != 1 || past.Connections[0].ConfigVersion != privVersion || past.Decisions != 1 {
		t.Fatalf("past connections %+v decisions %d", past.Connections, past.Decisions)
	}
	// and the head has both servers and the connection rebuilt from the app version
	if now.Position != w.head() || len(now.Servers) != 2 {
		t.Fatalf("now %+v", now)
	}
	if len(now.Connections) != 1 || now.Connections[0].ConfigVersion != appVersion || len(now.Mismatches) != 0 {
		t.Fatalf("now connections %+v mismatches %v", now.Connections, now.Mismatches)
	}
	if now.Servers[0].Config == nil || now.Servers[0].Config.Headers["X-Api-Key"] != domain.Redacted {
		t.Fatalf("replayed config not redacted: %+v", now.Servers[0].Config)
	}
}

func TestExport_Filters(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	url := clockURL(t)

	// given events of the app scope, alice and bob, over two periods
	w.register("admin", domain.AppScope, "clock", url)
	w.register("owner:alice", domain.UserScope("alice"), "notes", "http://127.0.0.1:1/mcp")
	mid := between(t)
	w.register("owner:bob", domain.UserScope("bob"), "notes", "http://127.0.0.1:1/mcp")
	if _, err := w.get("owner:alice", "alice", "clock"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.get("owner:bob", "bob", "clock"); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		f    audit.Filter
		want []string // subjects, in order
	}{
		{"all", audit.Filter{}, []string{"server/app/clock", "server/app/clock", "server/user:alice/notes",
			"server/user:alice/notes", "server/user:bob/notes", "server/user:bob/notes", "conn/alice/clock", "conn/bob/clock"}},
		{"owner", audit.Filter{Owner: "alice"}, []string{"server/user:alice/notes", "server/user:alice/notes", "conn/alice/clock"}},
		{"server", audit.Filter{Server: "notes", Types: []string{"mcpes.server.registered.v1"}},
			[]string{"server/user:alice/notes", "server/user:bob/notes"}},
		{"type prefix", audit.Filter{Types: []string{"mcpes.connection.*"}}, []string{"conn/alice/clock", "conn/bob/clock"}},
		{"until", audit.Filter{Until: mid}, []string{"server/app/clock", "server/app/clock", "server/user:alice/notes", "server/user:alice/notes"}},
		{"since", audit.Filter{Since: mid, Subjects: []string{"conn/"}}, []string{"conn/alice/clock", "conn/bob/clock"}},
		{"nothing before", audit.Filter{Until: time.Unix(1, 0)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// when the log is exported with the filter
			var buf bytes.Buffer
			n, err := audit.Export(ctx, w.st, c.f, &buf, nil)
			if err != nil {
				t.Fatal(err)
			}

			// then exactly the selected events come out, one CloudEvent a line, hash last
			got := exportedSubjects(t, buf.Bytes())
			if n != len(got) || strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Fatalf("exported %d: %v\nwant %v", n, got, c.want)
			}
		})
	}
}

func exportedSubjects(tb testing.TB, b []byte) []string {
	tb.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev struct {
			SpecVersion string `json:"specversion"`
			Subject     string `json:"subject"`
			Hash        string `json:"hash"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			tb.Fatalf("line %q: %v", line, err)
		}
		if ev.SpecVersion != "1.0" || len(ev.Hash) != 64 || !bytes.HasSuffix(line, []byte(`"hash":"`+ev.Hash+`"}`)) {
			tb.Fatalf("line is not a CloudEvent with hash last: %s", line)
		}
		if bytes.Contains(line, []byte("key-in-clear")) {
			tb.Fatalf("secret in clear: %s", line)
		}
		out = append(out, ev.Subject)
	}
	return out
}
