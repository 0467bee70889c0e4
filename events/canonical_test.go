package events_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpes/mcpes/events"
)

// marshalled is what Canonical must return: encoding/json's bytes of the envelope
// without its hash.
func marshalled(e events.Envelope) ([]byte, error) {
	e.Hash = ""
	return json.Marshal(e)
}

func checkCanonical(t *testing.T, e events.Envelope) {
	t.Helper()
	want, werr := marshalled(e)
	got, gerr := e.Canonical()
	if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("Canonical differs from encoding/json:\n got %s (%v)\nwant %s (%v)", got, gerr, want, werr)
	}
}

func TestCanonical_SameBytesAsEncodingJSON(t *testing.T) {
	// given envelopes with plain fields, and with every kind of field encoding/json
	// rewrites: HTML characters, controls, quotes, non-ASCII, invalid UTF-8, line
	// separators, payloads with whitespace, escapes, deep nesting, bad JSON
	base := sampleEnvelope(t)
	base.Sequence, base.StreamVersion, base.PrevHash, base.Hash = 42, 7, "ab", "cd"
	deep := bytes.Repeat([]byte("["), 100)
	deep = append(deep, bytes.Repeat([]byte("]"), 100)...)
	strs := []string{"", "plain", "a<b>&c", "tab\there", "quote\"back\\slash", "é ü 日本", "bad\xffutf8", "line\u2028sep", "\x00\x1f\x7f"}
	datas := []string{`{"a":1}`, `{ "a" : [1, 2.5e-3, -0, true, false, null] }`, `"<script>"`, `{"s":"\u003c\n\"\\\/"}`,
		`"\u2028"`, "\"\u2028\"", `[01]`, `{"a":}`, `1.`, `-`, `1e`, ``, `nul`, `{"a":1}x`, string(deep), `"\x01"`, `{"é":1}`}
	for _, s := range strs {
		e := base
		e.ID, e.Source, e.Type, e.Subject, e.Actor, e.Reason, e.CorrelationID = s, s, s, s, s, s, s
		checkCanonical(t, e)
	}
	for _, d := range datas {
		e := base
		e.Data = json.RawMessage(d)
		checkCanonical(t, e)
	}
	// and a time outside RFC 3339 fails as encoding/json fails
	e := base
	e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	checkCanonical(t, e)
	e.Data = nil
	checkCanonical(t, e)
}

func FuzzCanonical(f *testing.F) {
	f.Add("0190f1d2-0000-7000-8000-000000000001", "mcpes://node-1", "mcpes.server.removed.v1", "server/app/clock",
		"admin", "retired", "", int64(1772373720000000123), uint64(1), uint64(1), []byte(`{"scope":"app","name":"clock"}`))
	f.Add("<id>", "é", "a\u2028b", "bad\xff", "\"", "\\n", "corr", int64(-1), uint64(1<<63), uint64(0), []byte(` {"a" : "<&>"} `))
	f.Fuzz(func(t *testing.T, id, source, typ, subject, actor, reason, corr string, nanos int64, seq, sv uint64, data []byte) {
		e := events.Envelope{SpecVersion: events.SpecVersion, ID: id, Source: source, Type: typ, Subject: subject,
			Time: time.Unix(0, nanos).UTC(), DataContentType: "application/json", Sequence: events.Sequence(seq),
			StreamVersion: sv, Actor: actor, Reason: reason, CorrelationID: corr, CausationID: reason,
			PrevHash: subject, Data: data}
		checkCanonical(t, e)
	})
}
