package events_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

func sampleEnvelope(tb testing.TB) events.Envelope {
	tb.Helper()
	e, err := events.New(domain.ServerRemoved{Scope: domain.Scope("app"), Name: "clock"}, events.Meta{
		ID: "0190f1d2-0000-7000-8000-000000000001", Source: "mcpes://node-1",
		Time: time.Date(2026, 3, 1, 14, 2, 0, 123, time.UTC), Actor: "admin", Reason: "retired",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func sealedRecord(tb testing.TB, e events.Envelope, seq uint64, prev [32]byte) ([]byte, [32]byte) {
	tb.Helper()
	_, canon, sum, err := events.Seal(e, seq, seq, prev)
	if err != nil {
		tb.Fatal(err)
	}
	return events.EncodeRecord(canon, sum), sum
}

func TestRecord_RoundTrip(t *testing.T) {
	// given a sealed envelope stored as a record after another one
	e := sampleEnvelope(t)
	first, h1 := sealedRecord(t, e, 1, events.ZeroHash)
	e.ID = "0190f1d2-0000-7000-8000-000000000002"
	rec, h2 := sealedRecord(t, e, 2, h1)

	// when it is checked and decoded
	got, err := events.CheckRecord(h1, rec)
	if err != nil || got != h2 {
		t.Fatalf("CheckRecord: %x, %v", got, err)
	}
	dec, err := events.DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}

	// then it is the sealed envelope, and it chains only to its predecessor
	if dec.Sequence != 2 || dec.StreamVersion != 2 || dec.PrevHash != hex.EncodeToString(h1[:]) ||
		dec.Hash != hex.EncodeToString(h2[:]) || dec.ID != e.ID || !dec.Time.Equal(e.Time) {
		t.Fatalf("decoded %+v", dec)
	}
	if _, err := events.CheckRecord(events.ZeroHash, rec); !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("record 2 chained to zero: %v, want ErrCorrupt", err)
	}
	if _, err := events.CheckRecord(events.ZeroHash, first); err != nil {
		t.Fatalf("first record: %v", err)
	}
	if fact, err := events.Decode(dec); err != nil || fact.(domain.ServerRemoved).Name != "clock" {
		t.Fatalf("Decode: %#v, %v", fact, err)
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the record codec: it must return an
// error wrapping ErrCorrupt or an envelope consistent with the header, never panic.
func FuzzDecodeRecord(f *testing.F) {
	rec, _ := sealedRecord(f, sampleEnvelope(f), 1, events.ZeroHash)
	f.Add(rec)
	f.Add(rec[:40])
	f.Add(rec[:33])
	f.Add([]byte{})
	f.Add([]byte{1})
	bad := bytes.Clone(rec)
	bad[0] = 2
	f.Add(bad)
	f.Add(append(bytes.Clone(rec[:33]), `{"hash":"x"}`...))
	f.Add(append(bytes.Clone(rec[:33]), `{"sequence":"-1","data":null}`...))
	f.Add(append(bytes.Clone(rec[:33]), `{"sequence":18446744073709551616}`...))
	f.Add(append(bytes.Clone(rec[:33]), `{"time":"not a time"}`...))
	f.Fuzz(func(t *testing.T, rec []byte) {
		sum, chainErr := events.CheckRecord(events.ZeroHash, rec)
		e, err := events.DecodeRecord(rec)
		if err != nil {
			if !errors.Is(err, events.ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if chainErr == nil && e.Hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("decoded hash %s, header %x", e.Hash, sum)
		}
		if len(e.Hash) != 64 {
			t.Fatalf("decoded hash %q", e.Hash)
		}
	})
}

// FuzzDecode decodes arbitrary data under arbitrary types: an error or a fact of the
// catalogue type the upcasters lead to, never a panic.
func FuzzDecode(f *testing.F) {
	facts := []any{
		domain.ServerRemoved{Scope: "app", Name: "a"},
		domain.ServerRegistered{Scope: "app", Name: "a"},
		domain.ServerReinspectionRequested{Scope: "user:u1", Name: "b"},
		domain.ConnectionLost{Owner: "u1", Server: "a"},
		domain.ToolCalled{Owner: "u1", Server: "a"},
	}
	for _, fact := range facts {
		typ, _ := events.TypeName(fact)
		data, _ := json.Marshal(fact)
		f.Add(typ, data)
	}
	f.Add("mcpes.server.registered.v0", []byte(`{"name":"old","server":{"transport":"stdio","command":"x"}}`))
	f.Add("mcpes.server.registered.v0", []byte(`{"name":"old"}`))
	f.Add("mcpes.server.registered.v0", []byte(`[]`))
	f.Add("mcpes.nope.v1", []byte(`{}`))
	f.Add(events.TypeServerInspected, []byte(`{"tools":[{"name":1}]}`))
	f.Add(events.TypeConnectionOpened, []byte(`null`))
	f.Add("", []byte(``))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		fact, err := events.Decode(events.Envelope{Type: typ, Data: data})
		if err != nil {
			return
		}
		final, _, uerr := events.Upcast(typ, data)
		if uerr != nil {
			t.Fatalf("Decode succeeded but Upcast fails: %v", uerr)
		}
		if name, err := events.TypeName(fact); err != nil || name != final {
			t.Fatalf("decoded %T (%s, %v) for type %s", fact, name, err, final)
		}
	})
}

// FuzzSealRoundTrip seals envelopes with arbitrary writer fields and data: a sealed
// record decodes to the same envelope and re-encodes to the same canonical bytes, so
// that a decoded event verifies against its stored hash.
func FuzzSealRoundTrip(f *testing.F) {
	f.Add("retired", "corr", []byte(`{"a":1}`), int64(0))
	f.Add(`quo"te\`, "", []byte(` { "a" : [1, 2] } `), int64(-1))
	f.Add("<&>\u2028", "ü", []byte(`"<script>"`), int64(1<<62))
	f.Add("", "", []byte(`null`), int64(123456789))
	f.Fuzz(func(t *testing.T, reason, corr string, data []byte, nanos int64) {
		if !utf8.ValidString(reason) || !utf8.ValidString(corr) {
			t.Skip("the store rejects invalid UTF-8")
		}
		e := sampleEnvelope(t)
		e.Reason, e.CorrelationID, e.Data = reason, corr, data
		e.Time = time.Unix(0, nanos)
		sealed, canon, sum, err := events.Seal(e, 7, 3, events.ZeroHash)
		if err != nil {
			if json.Valid(data) {
				t.Fatalf("seal of valid data: %v", err)
			}
			return
		}
		dec, err := events.DecodeRecord(events.EncodeRecord(canon, sum))
		if err != nil {
			t.Fatalf("decode of a sealed record: %v", err)
		}
		again, err := dec.Canonical()
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical bytes changed across decode:\n%s\n%s", canon, again)
		}
		if dec.Hash != sealed.Hash || dec.Reason != reason || dec.CorrelationID != corr || !dec.Time.Equal(sealed.Time) {
			t.Fatalf("decoded %+v\nsealed %+v", dec, sealed)
		}
	})
}

// FuzzEachField: on any JSON object encoding/json accepts, the scanner reports no
// error, every member it yields is a valid JSON value, and it yields the same member
// count and keys; on anything else it returns an error or stops, never panics.
func FuzzEachField(f *testing.F) {
	f.Add([]byte(`{"type":"x","subject":"s","time":"t","sequence":"1","data":{"a":[1,"]"]}}`))
	f.Add([]byte(`{"data":"\\\"","type":1}`))
	f.Add([]byte(` { "a" : [ {"b":"}"} ] , "c" : null } `))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = events.Field(b, "data")
		_ = events.EachEnvelopeField(b, func(_, v []byte) bool { _ = events.Unquote(v); return true })
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || want == nil {
			return
		}
		n := 0
		err := events.EachField(b, func(k, v []byte) bool {
			n++
			if !json.Valid(v) {
				t.Fatalf("%s: value %q of %q is not JSON", b, v, k)
			}
			if bytes.IndexByte(k, '\\') < 0 {
				if _, ok := want[string(k)]; !ok && utf8.Valid(k) {
					t.Fatalf("%s: key %q not in %v", b, k, want)
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if n < len(want) {
			t.Fatalf("%s: %d members scanned, encoding/json has %d", b, n, len(want))
		}
	})
}
