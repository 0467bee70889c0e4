package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/audit"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/internal/testevents"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// exportLines returns the whole log of st as the API serves it.
func exportLines(tb testing.TB, st store.Store) [][]byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := audit.Export(context.Background(), st, audit.Filter{}, &buf, nil); err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

func checkLines(tb testing.TB, lines [][]byte) *logCheck {
	tb.Helper()
	var c logCheck
	for _, l := range lines {
		var ev events.Envelope
		if err := json.Unmarshal(l, &ev); err != nil {
			tb.Fatal(err)
		}
		c.line(l, ev)
	}
	return &c
}

func TestLogCheck_FindsAChangedEventAndPassesAnIntactLog(t *testing.T) {
	// given a log of three events as the API serves it
	st := memory.New()
	t.Cleanup(func() { _ = st.Close() })
	for _, name := range []string{"a", "b", "c"} {
		testevents.Append(t, st, "admin", domain.ServerRegistered{Scope: domain.AppScope, Name: name,
			Config: domain.ServerConfig{URL: "https://" + name + ".example.com"}})
	}
	lines := exportLines(t, st)

	// when it is checked intact, then nothing is reported
	if c := checkLines(t, lines); c.broken || len(c.warnings()) != 0 {
		t.Fatalf("intact log: %v", c.warnings())
	}
	// when the second event's content is changed, then the chain breaks there
	lines[1] = bytes.Replace(lines[1], []byte("b.example.com"), []byte("evil.example"), 1)
	c := checkLines(t, lines)
	if !c.broken || c.at != 2 || !strings.Contains(c.warnings()[0], "position 2") {
		t.Fatalf("changed event 2: broken %v at %d: %v", c.broken, c.at, c.warnings())
	}
}
