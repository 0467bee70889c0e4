package relay

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

func sealedRecord(tb testing.TB, seq uint64) ([]byte, events.Envelope) {
	tb.Helper()
	e, err := events.New(domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "a<b>&c", Message: "quote \" and \u2028"},
		events.Meta{ID: "01a2b3c4-0000-7000-8000-000000000001", Source: "mcpes://n", Time: time.Unix(1, 5),
			Actor: "system", CorrelationID: "corr"})
	if err != nil {
		tb.Fatal(err)
	}
	sealed, canon, sum, err := events.Seal(e, seq, 1, events.ZeroHash)
	if err != nil {
		tb.Fatal(err)
	}
	return events.EncodeRecord(canon, sum), sealed
}

func TestFromRecord_PayloadIsTheEnvelopeJSONWithHash(t *testing.T) {
	// given a sealed record whose data needs escaping
	rec, sealed := sealedRecord(t, 42)

	// when it is turned into an outgoing event
	o, err := fromRecord(42, rec)
	if err != nil {
		t.Fatal(err)
	}

	// then the payload is byte for byte json.Marshal of the envelope with its hash
	want, err := json.Marshal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if string(o.payload) != string(want) {
		t.Fatalf("payload\n%s\nwant\n%s", o.payload, want)
	}
	if o.id != sealed.ID || o.seq != 42 || o.typ != events.TypeServerInspectionFailed ||
		o.subject != "server/app/a<b>&c" || o.corr != "corr" || o.area != ServerTopic {
		t.Fatalf("outgoing = %+v", o)
	}
	// and a record at another position is refused rather than published
	if _, err := fromRecord(43, rec); err == nil {
		t.Fatal("record 42 accepted at position 43")
	}
}

func FuzzFromRecord(f *testing.F) {
	rec, _ := sealedRecord(f, 1)
	f.Add(uint64(1), rec)
	f.Add(uint64(1), []byte{1})
	f.Add(uint64(2), append([]byte{1}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, pos uint64, rec []byte) {
		o, err := fromRecord(pos, rec)
		if err != nil || !json.Valid(rec[33:]) {
			return
		}
		var slow recordHead
		if json.Unmarshal(rec[33:], &slow) == nil && slow != (recordHead{ID: o.id, Type: o.typ, Subject: o.subject,
			Sequence: events.Sequence(o.seq), CorrelationID: o.corr}) {
			t.Fatalf("scanner read %+v, encoding/json %+v", o, slow)
		}
		var back events.Envelope
		if err := json.Unmarshal(o.payload, &back); err != nil {
			t.Fatalf("payload of an accepted record is not JSON: %v\n%q", err, o.payload)
		}
		if uint64(back.Sequence) != pos || back.ID != o.id || len(back.Hash) != 64 {
			t.Fatalf("payload disagrees with outgoing: %+v vs %+v", back, o)
		}
	})
}

func FuzzScanHead(f *testing.F) {
	rec, _ := sealedRecord(f, 1)
	f.Add(rec[33:])
	f.Add([]byte(`{"ID":"x","id":"y","sequence":"1"}`))
	f.Add([]byte(`{"id":"a\u003cb","subject":null,"data":{"x":["}",{"y":"\""}]},"type":"t"}`))
	f.Add([]byte(` { "sequence" : 12 , "id" : "z" } `))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		fast, ok := scanHead(b)
		if !ok {
			return
		}
		var slow recordHead
		if err := json.Unmarshal(b, &slow); err != nil {
			return // e.g. a sequence encoding/json rejects; the scanner's value is unused then
		}
		if fast != slow {
			t.Fatalf("%s: scanner %+v, encoding/json %+v", b, fast, slow)
		}
	})
}

func BenchmarkParseHead(b *testing.B) {
	rec, _ := sealedRecord(b, 1)
	canon := rec[33:]
	b.Run("scanner", func(b *testing.B) {
		for range b.N {
			if _, err := parseHead(canon); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for range b.N {
			var h recordHead
			if err := json.Unmarshal(canon, &h); err != nil {
				b.Fatal(err)
			}
		}
	})
}
