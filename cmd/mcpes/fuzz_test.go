package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzCopySSE feeds arbitrary event-stream bytes to the SSE reader of `events
// --follow`: no panic, and every line written comes from a data field.
func FuzzCopySSE(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\n"))
	f.Add([]byte(": heartbeat\n\nid: 7\nevent: x\ndata: a\ndata: b\n\n"))
	f.Add([]byte("data:\n\ndata: no end"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		_, _ = copySSE(bytes.NewReader(in), w)
		_ = w.Flush()
		if out.Len() > 0 && !strings.Contains(string(in), "data:") {
			t.Fatalf("wrote %q from input without data fields", out.String())
		}
	})
}
