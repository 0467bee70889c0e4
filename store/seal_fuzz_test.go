package store

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/mcpes/mcpes/events"
)

// FuzzScanSeal checks that scanSeal never panics on hostile bytes and, on a JSON
// object encoding/json also reads, agrees with it on the sequence and prevhash.
func FuzzScanSeal(f *testing.F) {
	_, canon, _, err := events.Seal(events.Envelope{SpecVersion: events.SpecVersion, ID: "id", Source: "s",
		Type: events.TypeToolCalled, Subject: "conn/a/b", Data: json.RawMessage(`{"x":{"y":[1,"}"]}}`)}, 42, 1, [32]byte{7})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(canon)
	f.Add([]byte(`{"sequence":7,"prevhash":"ab"}`))
	f.Add([]byte(`{"sequence":"00000000000000000001","prevhash":"\u0061b","data":{}}`))
	f.Add([]byte(`{"sequence":"1","prevhash":"ab","hash":"cd","data":{}}`))
	f.Add([]byte(`{"sequence":"18446744073709551616","prevhash":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := scanSeal(b)
		if err != nil {
			return
		}
		var want struct {
			Sequence events.Sequence `json:"sequence"`
			PrevHash string          `json:"prevhash"`
			Hash     *string         `json:"hash"`
		}
		if json.Unmarshal(b, &want) != nil || !utf8.Valid(s.prevHash) {
			return // the scanner does not validate the event's data, nor UTF-8 (hexIs does)
		}
		if uint64(want.Sequence) != s.sequence || want.PrevHash != string(s.prevHash) || want.Hash != nil {
			t.Fatalf("scan says sequence %d prevhash %q; json says %d %q (hash %v)", s.sequence, s.prevHash,
				want.Sequence, want.PrevHash, want.Hash)
		}
	})
}
