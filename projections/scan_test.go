package projections

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

func TestScanEnvelope_AgreesWithTheCodec(t *testing.T) {
	facts := []any{
		registered(domain.AppScope, "a", "https://a.example.com/mcp"),
		domain.ServerInspectionFailed{Scope: domain.UserScope("al.ice@x"), Name: "n", Message: "quote \" backslash \\ tab \t é"},
		opened("", "a", 7, 8, "c\"1"),
	}
	for i, f := range facts {
		env := envelopeFor(t, f, i+1)
		env.Reason = `a "reason" with } and {`
		_, canon, hash, err := events.Seal(env, uint64(i+1), 1, events.ZeroHash)
		if err != nil {
			t.Fatal(err)
		}
		rec := events.EncodeRecord(canon, hash)
		want, err := events.DecodeRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		var got rawEvent
		if err := scanEnvelope(canon, &got, nil); err != nil {
			t.Fatal(err)
		}
		if got.typ != want.Type || got.subject != want.Subject || got.pos != uint64(want.Sequence) ||
			!got.time().Equal(want.Time) || string(got.data) != string(want.Data) {
			t.Fatalf("fact %d: scanned %+v, decoded %+v", i, got, want)
		}
	}
}

func TestParseTime_FormatsTheCodecWrites(t *testing.T) {
	for _, tm := range []time.Time{t0, t0.Add(123456789), t0.Add(100 * time.Millisecond), time.Date(1999, 12, 31, 23, 59, 59, 1, time.UTC)} {
		b, _ := json.Marshal(tm)
		if got := parseTime(b[1 : len(b)-1]); !got.Equal(tm) {
			t.Fatalf("%s: got %s", b, got)
		}
	}
	if got := parseTime([]byte("2026-03-01T10:00:00+01:00")); !got.Equal(t0) {
		t.Fatalf("offset form: %s", got)
	}
}

// FuzzScanEnvelope checks the hand-written scanner never panics and, whenever the
// standard decoder accepts an envelope, reads the same fields from its canonical bytes
// (the only form a store holds).
func FuzzScanEnvelope(f *testing.F) {
	for i, fact := range []any{registered(domain.AppScope, "a", "https://a/mcp"), opened("bob", "s", 1, 2, "c")} {
		env := envelopeFor(f, fact, i+1)
		_, canon, _, _ := events.Seal(env, uint64(i+1), 1, events.ZeroHash)
		f.Add(canon)
	}
	f.Add([]byte(`{"type":"x","subject":"s","time":"t","sequence":"1","data":{"a":[1,"]"]}}`))
	f.Add([]byte(`{"data":"\\\"","type":1}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var junk rawEvent
		_ = scanEnvelope(b, &junk, map[string]string{})
		junk.time()
		_ = events.Field(b, "data")
		var want events.Envelope
		if json.Unmarshal(b, &want) != nil || want.Data == nil || want.Time.Year() < 1 || want.Time.Year() > 9999 {
			return
		}
		canon, err := want.Canonical()
		if err != nil {
			return
		}
		var got rawEvent
		if err := scanEnvelope(canon, &got, nil); err != nil {
			t.Fatalf("scan of canonical %s: %v", canon, err)
		}
		var data, wantData bytes.Buffer
		_ = json.Compact(&data, got.data)
		_ = json.Compact(&wantData, want.Data)
		if got.typ != want.Type || got.subject != want.Subject || got.pos != uint64(want.Sequence) ||
			!got.time().Equal(want.Time) || data.String() != wantData.String() {
			t.Fatalf("scanned %+v from %s", got, canon)
		}
	})
}

func TestLinker_AgreesWithCheckRecord(t *testing.T) {
	env := envelopeFor(t, registered(domain.AppScope, "a", "https://a/mcp"), 1)
	_, canon, hash, _ := events.Seal(env, 1, 1, events.ZeroHash)
	good := events.EncodeRecord(canon, hash)
	l := newLinker()
	for i := range len(good) {
		rec := bytes.Clone(good)
		if i > 0 {
			rec[i] ^= 0x40
		}
		h1, err1 := events.CheckRecord(events.ZeroHash, rec)
		h2, err2 := l.check(events.ZeroHash, rec)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && h1 != h2) {
			t.Fatalf("byte %d: CheckRecord %v, linker %v", i, err1, err2)
		}
		if i > 0 && err2 == nil {
			t.Fatalf("byte %d flipped and accepted", i)
		}
	}
}
