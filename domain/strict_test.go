package domain

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestServerConfig_ExtraKeysNeverSetFields(t *testing.T) {
	// given a stored config whose extra keys differ from real fields only in case
	raw := `{"type":"sse","url":"https://a.example/sse","headers":{"X":"1"},` +
		`"URL":"http://127.0.0.1:9/sse","Type":"stdio","Command":"/bin/sh","Headers":{"Authorization":"stolen"}}`

	// when it is decoded, and written and read back as an event would be
	var cfg ServerConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back ServerConfig
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}

	// then the fields are those of the exact keys, each time, and the others are extras
	for _, c := range []ServerConfig{cfg, back} {
		if c.URL != "https://a.example/sse" || c.Type != "sse" || c.Command != "" || c.Headers["X"] != "1" || len(c.Headers) != 1 {
			t.Fatalf("fields taken from case-folded keys: %+v", c)
		}
		if len(c.Extra) != 4 {
			t.Fatalf("extras %v", c.Extra)
		}
	}
	// and validation names each of them
	err = ValidateConfig(AppScope, "s", cfg)
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("validate: %v", err)
	}
	fields := map[string]bool{}
	for _, p := range ve.Problems {
		fields[p.Field] = true
	}
	for _, k := range []string{"URL", "Type", "Command", "Headers"} {
		if !fields[k] {
			t.Errorf("no problem names %s: %v", k, ve.Problems)
		}
	}
}

// FuzzServerConfigExactKeys: whatever the JSON, the decoded fields equal those decoded
// from the exact known keys alone, and a decode-encode-decode round trip keeps them.
func FuzzServerConfigExactKeys(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://a/sse","URL":"http://b/sse"}`,
		`{"Headers":{"A":"b"},"headers":null}`,
		`{"type":"stdio","command":"x","args":["a"],"env":{"K":"v"}}`,
		`{"TYPE":"sse","tYpE":"stdio"}`,
		`{}`, `null`, `{"customUserVars":{"K":{"Title":"t","title":"u"}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var cfg ServerConfig
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			return
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal([]byte(raw), &all); err != nil {
			t.Fatalf("config decoded but the object did not: %v", err)
		}
		exact := map[string]json.RawMessage{}
		for k, v := range all {
			if knownFields[k] {
				exact[k] = v
			}
		}
		eb, _ := json.Marshal(exact)
		var want plainConfig
		if err := json.Unmarshal(eb, &want); err != nil {
			t.Fatalf("exact keys alone do not decode: %v", err)
		}
		got := plainConfig(cfg)
		got.Extra, want.Extra = nil, nil
		if !sameFields(got, want) {
			t.Fatalf("fields differ from the exact keys': %+v vs %+v", got, want)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			return // an extra value that is not valid JSON cannot arise from a decode
		}
		var back ServerConfig
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip: %v (%s)", err, b)
		}
		bp := plainConfig(back)
		bp.Extra = nil
		if !sameFields(bp, got) {
			t.Fatalf("round trip changed fields: %+v vs %+v", bp, got)
		}
	})
}

// sameFields compares the known fields as written (nil and empty alike are omitted).
func sameFields(a, b plainConfig) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}
