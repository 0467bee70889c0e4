package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// The relay over streamable HTTP before 2026-07-28: mcpes posts each request on
// the upstream session itself and reads the answer's event stream, so everything
// on that stream belongs to the request.

// maxResumes bounds how often one relayed request's stream is resumed.
const maxResumes = 20

// postRelay posts the request on the upstream session and reads its answer.
func (c *Conn) postRelay(ctx context.Context, call *relayCall, method string, params json.RawMessage) (*Response, error) {
	msg := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      string          `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{mcp.JSONRPC_VERSION, call.id, method, params}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	resp, err := c.post(ctx, http.MethodPost, body, "application/json, text/event-stream", "")
	if err != nil {
		return nil, err
	}
	lastID, retry := "", time.Second
	for resumes := 0; ; resumes++ {
		out, err := c.readAnswer(ctx, resp, call, &lastID, &retry)
		resp.Body.Close()
		if out != nil || err != nil {
			return out, err
		}
		if lastID == "" || resumes == maxResumes {
			return nil, fmt.Errorf("%w: the event stream ended before the answer", ErrProtocol)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retry):
		}
		if resp, err = c.post(ctx, http.MethodGet, nil, "text/event-stream", lastID); err != nil {
			return nil, err
		}
	}
}

// readAnswer reads one HTTP answer to a relayed request: the JSON-RPC response
// (out), or nothing when an event stream ended before it (resume from *lastID).
func (c *Conn) readAnswer(ctx context.Context, resp *http.Response, call *relayCall, lastID *string, retry *time.Duration) (*Response, error) {
	ct := resp.Header.Get("Content-Type")
	switch {
	case resp.StatusCode == http.StatusNotFound:
		err := fmt.Errorf("upstream session ended (HTTP 404)")
		c.lose(err)
		return nil, err
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxSSEEvent))
		if out, ok := c.answer(b, call); ok {
			return out, nil
		}
		return nil, fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
	case strings.HasPrefix(ct, "text/event-stream"):
		var out *Response
		err := readSSE(resp.Body, func(ev sseEvent) bool {
			if ev.ID != "" {
				*lastID = ev.ID
			}
			if ev.Retry > 0 {
				*retry = min(time.Duration(ev.Retry)*time.Millisecond, 30*time.Second)
			}
			if ev.Data == "" {
				return true
			}
			if r, ok := c.answer([]byte(ev.Data), call); ok {
				out, r.Streamed = r, true
				return false
			}
			c.dispatch(ctx, []byte(ev.Data), call)
			return true
		})
		if out != nil {
			return out, nil
		}
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil // ended early: resume
	default:
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxSSEEvent+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxSSEEvent {
			return nil, fmt.Errorf("%w: answer larger than %d bytes", ErrProtocol, maxSSEEvent)
		}
		if out, ok := c.answer(b, call); ok {
			return out, nil
		}
		return nil, fmt.Errorf("%w: no answer to %s in the response", ErrProtocol, call.id)
	}
}

// wireMsg is any JSON-RPC message, undecoded.
type wireMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *RPCError       `json:"error"`
}

// answer returns the response in b when b is the answer to call.
func (c *Conn) answer(b []byte, call *relayCall) (*Response, bool) {
	var m wireMsg
	if json.Unmarshal(b, &m) != nil || m.Method != "" || len(m.ID) == 0 {
		return nil, false
	}
	var id string
	if json.Unmarshal(m.ID, &id) != nil || id != call.id {
		return nil, false
	}
	if m.Error != nil {
		return &Response{Error: m.Error}, true
	}
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("{}")
	}
	return &Response{Result: m.Result}, true
}

// post sends one HTTP request on the upstream session.
func (c *Conn) post(ctx context.Context, method string, body []byte, accept, lastEventID string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if sid := c.client.GetSessionId(); sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
	}
	req.Header.Set("Mcp-Protocol-Version", c.init.ProtocolVersion)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return c.http.Do(req)
}

// dispatch handles one message the server sent (not an answer to a relayed
// request): a request to the client, or a notification. related is the relayed
// request whose stream carried it, nil when none did.
func (c *Conn) dispatch(ctx context.Context, b []byte, related *relayCall) {
	var m wireMsg
	if json.Unmarshal(b, &m) != nil || m.Method == "" {
		return
	}
	if len(m.ID) == 0 {
		c.notification(m.Method, m.Params, related)
		return
	}
	c.watchers.Add(1)
	go func() {
		defer c.watchers.Done()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serverRequestTimeout)
		defer cancel()
		out := c.serverRequest(rctx, m.Method, m.Params, related)
		reply := struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Result  json.RawMessage `json:"result,omitempty"`
			Error   *RPCError       `json:"error,omitempty"`
		}{mcp.JSONRPC_VERSION, m.ID, out.Result, out.Error}
		body, err := json.Marshal(reply)
		if err != nil {
			return
		}
		resp, err := c.post(c.lifeCtx, http.MethodPost, body, "application/json, text/event-stream", "")
		if err != nil {
			c.logger.Warn("answer to a server request not delivered", "method", m.Method, "err", c.red.err(err))
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}()
}
