package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// An export is read by SIEMs and audit tools with their own CloudEvents parsers, and
// checked by reviewers without mcpes: every line must be a valid CloudEvent to the
// reference SDK, and its hash must be recomputable from the line alone.
func TestExport_LinesAreCloudEventsAndChainWithoutMcpes(t *testing.T) {
	ctx := context.Background()
	// given a log with a registration and a refusal
	st := memory.New()
	defer st.Close()
	at := time.Date(2026, 11, 24, 14, 2, 0, 123456789, time.UTC)
	reg := domain.ServerRegistered{Scope: domain.AppScope, Name: "clock", Config: domain.ServerConfig{Command: "clock"}}
	ref := domain.ConnectionRefused{Rule: domain.RuleStartupDisabled, Count: 1,
		Inputs: domain.DecisionInputs{Server: "clock", Position: 1, ExistingState: domain.ConnNone,
			Config: domain.ConfigView{Found: true, Scope: domain.AppScope, Version: 1}}}
	for i, fact := range []any{reg, ref} {
		env, err := events.New(fact, events.Meta{ID: []string{"019ab5f0-0000-7000-8000-000000000001",
			"019ab5f0-0000-7000-8000-000000000002"}[i], Source: "mcpes://test", Time: at, Actor: "system"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, env.Subject, store.AnyVersion, env); err != nil {
			t.Fatal(err)
		}
	}

	// when the log is exported
	var out bytes.Buffer
	if n, err := audit.Export(ctx, st, audit.Filter{}, &out, nil); err != nil || n != 2 {
		t.Fatalf("export: %d events, %v", n, err)
	}

	// then each line is a valid CloudEvent with the mcpes extensions
	prev := make([]byte, 32)
	sc := bufio.NewScanner(&out)
	for line := 1; sc.Scan(); line++ {
		var ev ce.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d is not a CloudEvent: %v\n%s", line, err, sc.Bytes())
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if ev.SpecVersion() != "1.0" || ev.Source() != "mcpes://test" || !ev.Time().Equal(at) {
			t.Errorf("line %d: attributes %s %s %s", line, ev.SpecVersion(), ev.Source(), ev.Time())
		}
		for _, ext := range []string{"sequence", "streamversion", "actor", "prevhash", "hash"} {
			if _, ok := ev.Extensions()[ext]; !ok {
				t.Errorf("line %d lacks extension %q", line, ext)
			}
		}
		// and its hash is SHA-256(previous hash || the line without its "hash" member)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
			t.Fatal(err)
		}
		var hash string
		_ = json.Unmarshal(fields["hash"], &hash)
		canonical := bytes.Replace(sc.Bytes(), []byte(`,"hash":`+string(fields["hash"])), nil, 1)
		sum := sha256.Sum256(append(bytes.Clone(prev), canonical...))
		if hex.EncodeToString(sum[:]) != hash {
			t.Fatalf("line %d: hash %s is not SHA-256(prev || line without hash)", line, hash)
		}
		prev = sum[:]
	}
}
