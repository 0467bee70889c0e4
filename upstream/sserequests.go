package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/client/transport"
)

// Server requests on the legacy SSE transport. mcp-go's SSE client takes every
// message with an id for a response and drops the ones it is not waiting for, so
// the requests a server sends on its event stream (sampling, elicitation, roots)
// would never be answered. sseRequests reads the event stream before mcp-go does:
// a message event that is a request is taken out of the stream and answered here
// (serverRequest routes it to the client session it belongs to); the answer is
// posted to the session's message endpoint like any other client message.
// Everything else passes through byte for byte.

// sseRequests wraps the SSE transport's RoundTripper.
type sseRequests struct {
	base   http.RoundTripper
	max    int          // an event longer than this is passed on unread
	answer func([]byte) // called with each request's JSON; must not block
}

func (t sseRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, err
	}
	resp.Body = &sseFilter{body: resp.Body, br: bufio.NewReader(resp.Body), max: t.max, onRequest: t.answer}
	return resp, nil
}

// sseFilter is an event-stream body with the server's requests taken out.
type sseFilter struct {
	body      io.ReadCloser
	br        *bufio.Reader
	max       int
	onRequest func([]byte)
	raw       []byte // the current event's lines so far
	passing   bool   // the current event is too long to read: pass it on
	pending   []byte // bytes to hand on
	err       error
}

func (f *sseFilter) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.step()
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

func (f *sseFilter) Close() error { return f.body.Close() }

// step reads one line (or the part of one that fits the reader's buffer).
func (f *sseFilter) step() {
	line, err := f.br.ReadSlice('\n')
	end := err == nil && len(bytes.TrimRight(line, "\r\n")) == 0
	if f.passing {
		f.pending = append(f.pending[:0], line...)
		f.passing = !end
	} else {
		f.raw = append(f.raw, line...)
		switch {
		case end:
			f.event()
		case len(f.raw) > f.max:
			f.pending, f.raw, f.passing = f.raw, nil, true
		}
	}
	if err != nil && err != bufio.ErrBufferFull {
		f.pending, f.raw = append(f.pending, f.raw...), nil
		f.err = err
	}
}

// event ends the current event: a request goes to onRequest, anything else on.
func (f *sseFilter) event() {
	var typ string
	var data []byte
	for l := range bytes.Lines(f.raw) {
		l = bytes.TrimRight(l, "\r\n")
		k, v, _ := bytes.Cut(l, []byte(":"))
		v = bytes.TrimPrefix(v, []byte(" "))
		switch string(k) {
		case "event":
			typ = string(v)
		case "data":
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, v...)
		}
	}
	if (typ == "" || typ == "message") && isRequest(data) {
		f.raw = f.raw[:0]
		f.onRequest(data)
		return
	}
	f.pending, f.raw = f.raw, nil
}

// isRequest reports whether data is a JSON-RPC request (a method and an id).
func isRequest(data []byte) bool {
	if !bytes.Contains(data, []byte(`"method"`)) {
		return false
	}
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	return json.Unmarshal(data, &m) == nil && m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null"
}

// answerSSE answers one request the server sent on its SSE stream, posting the
// answer to the session's message endpoint.
func (c *Conn) answerSSE(data []byte) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(data, &m) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.lifeCtx, serverRequestTimeout)
	defer cancel()
	out := c.serverRequest(ctx, m.Method, m.Params, nil)
	msg := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result,omitempty"`
		Error   *RPCError       `json:"error,omitempty"`
	}{"2.0", m.ID, out.Result, out.Error}
	if out.Error == nil && len(out.Result) == 0 {
		msg.Result = json.RawMessage("{}")
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return
	}
	sse, ok := c.client.GetTransport().(*transport.SSE)
	if !ok || sse.GetEndpoint() == nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sse.GetEndpoint().String(), bytes.NewReader(body))
	if err != nil {
		return
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.logger.Debug("answer to a server request not delivered", "method", m.Method, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
}
