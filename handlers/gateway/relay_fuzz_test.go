package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzAccepts: the Accept parser never panics, admits a header that lists the
// type or a wildcard for it, and refuses an empty header.
func FuzzAccepts(f *testing.F) {
	for _, s := range []string{"application/json, text/event-stream", "*/*", "text/*;q=0.5, application/json",
		"", ",,;;", "application/json;q=1;charset=utf-8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		ok := accepts(h, "application/json", "text/event-stream")
		if ok && !strings.Contains(h, "/") {
			t.Fatalf("%q admitted with no media type in it", h)
		}
		if !accepts(h+", */*", "application/json") {
			t.Fatalf("%q with */* appended refused", h)
		}
	})
}

// FuzzRewriteEntry: an entry that comes back rewritten is a JSON object whose key
// holds the new value; anything else comes back empty.
func FuzzRewriteEntry(f *testing.F) {
	for _, s := range []string{`{"name":"echo","inputSchema":{}}`, `[]`, `null`, `{"name":1}`, `{`} {
		f.Add([]byte(s), "clock__echo")
	}
	f.Fuzz(func(t *testing.T, entry []byte, value string) {
		out := rewriteEntry(entry, "name", value)
		if out == "" {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("rewritten %q is not an object: %v", out, err)
		}
		var got string
		if err := json.Unmarshal(m["name"], &got); err != nil || got != strings.ToValidUTF8(value, "\uFFFD") {
			t.Fatalf("name %q, want %q", got, value)
		}
	})
}

// FuzzPrefixContents: a read result keeps its shape, every content URI prefixed.
func FuzzPrefixContents(f *testing.F) {
	for _, s := range []string{`{"contents":[{"uri":"test://a","text":"x"}]}`, `{"contents":3}`, `{}`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, res []byte) {
		out := prefixContents("srv", res)
		if json.Valid(res) && !json.Valid(out) {
			t.Fatalf("valid %q became invalid %q", res, out)
		}
	})
}

func FuzzHopless(f *testing.F) {
	f.Add([]byte(`{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","progressToken":1}}`))
	f.Add([]byte(`{"_meta":{"io.modelcontextprotocol/clientInfo":{}}}`))
	f.Add([]byte(`[1,"io.modelcontextprotocol/"]`))
	f.Fuzz(func(t *testing.T, params []byte) {
		out := hopless(params)
		// the hop's keys are gone from a params object, everything else stays
		var p struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		}
		if json.Unmarshal(out, &p) == nil {
			for _, k := range hopKeys {
				if _, ok := p.Meta[k]; ok && !bytes.Equal(out, params) {
					t.Fatalf("%s kept in %s", k, out)
				}
			}
		}
		if !bytes.Contains(params, []byte("io.modelcontextprotocol/")) && !bytes.Equal(out, params) {
			t.Fatalf("changed %s -> %s", params, out)
		}
	})
}
