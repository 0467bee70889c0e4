package gateway

import (
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
