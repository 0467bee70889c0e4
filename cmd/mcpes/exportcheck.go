package main

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/mcpes/mcpes/events"
)

// checkingWriter passes an export's lines on to w and runs each through check, for an
// excerpt (an owner's or a server's events), where verifying the whole log would cost
// the whole log: each line's hash must match its content, and its prevhash the line
// before where positions follow each other. `mcpes verify` checks the whole log.
type checkingWriter struct {
	w       io.Writer
	check   *logCheck
	partial []byte
}

func (c *checkingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	data := p[:n]
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.partial = append(c.partial, data...)
			break
		}
		line := data[:i]
		if len(c.partial) > 0 {
			line = append(c.partial, line...)
		}
		var ev events.Envelope
		if json.Unmarshal(line, &ev) == nil && ev.Type != "" {
			c.check.line(line, ev)
		}
		c.partial = c.partial[:0]
		data = data[i+1:]
	}
	return n, err
}
