package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/events"
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

// FuzzLogCheck: any line, decoded or not, is checked without panicking, and a line
// that is not a sealed event never passes as one.
func FuzzLogCheck(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"mcpes://t","type":"mcpes.bogus.v1","subject":"s","sequence":"00000000000000000001","prevhash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"00"}`))
	f.Add([]byte(`{"sequence":"2","hash":"","prevhash":"zz"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var ev events.Envelope
		if json.Unmarshal(line, &ev) != nil {
			return
		}
		var c logCheck
		c.line(line, ev)
		c.line(line, ev)
		if ev.Hash == "" && !c.broken {
			t.Fatalf("a line without a hash passed: %q", line)
		}
		_ = c.warnings()
	})
}
