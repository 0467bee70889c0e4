package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// WebSocket transport: MCP over one WebSocket with subprotocol "mcp", one JSON-RPC
// message per text frame, as the official TypeScript SDK's WebSocket client speaks
// it. The socket is adapted to the newline-delimited stream mcp-go's stdio
// transport reads and writes (frames are compacted, so a message never spans
// lines), which gives it mcp-go's request matching, notifications and server
// requests unchanged.

// WebsocketSubprotocol is the subprotocol a WebSocket MCP server must accept.
const WebsocketSubprotocol = "mcp"

// MaxWebsocketMessage bounds one message read from a WebSocket server; a larger
// frame ends the connection as a protocol error.
const MaxWebsocketMessage = 16 << 20

// websocketWriteTimeout bounds one frame write to a server that stopped reading.
const websocketWriteTimeout = 30 * time.Second

// wsPipe is a WebSocket connection seen as an io.Reader (frames, one per line) and
// an io.WriteCloser (lines, one per frame).
type wsPipe struct {
	conn   *websocket.Conn
	life   context.Context
	pr     *io.PipeReader
	pw     *io.PipeWriter
	wmu    sync.Mutex
	wbuf   []byte
	ended  chan struct{}
	onEnd  func(err error, garbage bool)
	closed sync.Once
}

// dialWebsocket opens the WebSocket at rawURL (handshake through hc, so the SSRF
// guard and the no-redirect rule apply) with the given headers, and requires the
// server to accept subprotocol "mcp". onEnd is called once when the socket ends
// for any reason other than Close, with garbage set when the server sent
// something that is not a JSON text frame.
func dialWebsocket(ctx, life context.Context, rawURL string, headers map[string]string, hc *http.Client,
	onEnd func(err error, garbage bool)) (*wsPipe, error) {
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	conn, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: h, Subprotocols: []string{WebsocketSubprotocol},
	})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("%w: server answered HTTP %d to the WebSocket handshake", ErrAuth, resp.StatusCode)
		}
		if resp != nil {
			return nil, fmt.Errorf("%w: WebSocket handshake answered HTTP %d: %w", ErrProtocol, resp.StatusCode, err)
		}
		return nil, err
	}
	if conn.Subprotocol() != WebsocketSubprotocol {
		conn.CloseNow()
		return nil, fmt.Errorf("%w: server did not accept WebSocket subprotocol %q", ErrProtocol, WebsocketSubprotocol)
	}
	conn.SetReadLimit(MaxWebsocketMessage)
	p := &wsPipe{conn: conn, life: life, ended: make(chan struct{}), onEnd: onEnd}
	p.pr, p.pw = io.Pipe()
	go p.readLoop()
	return p, nil
}

// readLoop turns every text frame into one compact JSON line for mcp-go.
func (p *wsPipe) readLoop() {
	defer close(p.ended)
	var line bytes.Buffer
	for {
		typ, data, err := p.conn.Read(p.life)
		if err == nil && typ != websocket.MessageText {
			err = fmt.Errorf("%w: binary WebSocket frame (MCP uses text frames)", ErrProtocol)
		}
		if err == nil {
			line.Reset()
			if cerr := json.Compact(&line, data); cerr != nil {
				err = fmt.Errorf("%w: WebSocket frame is not JSON: %s", ErrProtocol, snippet(data, 80))
			}
		}
		if err != nil {
			p.end(err)
			return
		}
		line.WriteByte('\n')
		if _, werr := p.pw.Write(line.Bytes()); werr != nil {
			p.end(werr)
			return
		}
	}
}

// end reports why the socket ended (unless we closed it) and ends the reader.
func (p *wsPipe) end(err error) {
	if p.life.Err() == nil {
		var ce websocket.CloseError
		switch {
		case errors.As(err, &ce):
			err = fmt.Errorf("%w: server closed the WebSocket (%d %s)", ErrConnLost, ce.Code, ce.Reason)
		case !errors.Is(err, ErrProtocol):
			err = fmt.Errorf("%w: %w", ErrConnLost, err)
		}
		p.onEnd(err, errors.Is(err, ErrProtocol))
		p.conn.Close(websocket.StatusProtocolError, "")
	}
	p.pw.CloseWithError(io.EOF)
}

// Read gives mcp-go the next lines.
func (p *wsPipe) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Write sends every complete line written as one text frame.
func (p *wsPipe) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.wbuf = append(p.wbuf, b...)
	for {
		i := bytes.IndexByte(p.wbuf, '\n')
		if i < 0 {
			return len(b), nil
		}
		ctx, cancel := context.WithTimeout(p.life, websocketWriteTimeout)
		err := p.conn.Write(ctx, websocket.MessageText, p.wbuf[:i])
		cancel()
		p.wbuf = p.wbuf[i+1:]
		if err != nil {
			return 0, fmt.Errorf("websocket write: %w", err)
		}
	}
}

// Close closes the socket with a normal closure (mcp-go closes its output when the
// client closes).
func (p *wsPipe) Close() error {
	p.closed.Do(func() {
		// Closing handshake bounded: a dead peer must not hold Close for long.
		done := make(chan struct{})
		go func() {
			_ = p.conn.Close(websocket.StatusNormalClosure, "")
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			p.conn.CloseNow()
		}
		p.pr.CloseWithError(io.EOF)
	})
	return nil
}

// ping checks the socket every interval (pong within interval) so that a peer
// that vanished without closing TCP is noticed; a failed ping ends the socket.
func (p *wsPipe) ping(interval time.Duration) {
	if interval < 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.life.Done():
			return
		case <-p.ended:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(p.life, interval)
			err := p.conn.Ping(ctx)
			cancel()
			if err != nil && p.life.Err() == nil {
				p.onEnd(fmt.Errorf("%w: WebSocket ping: %w", ErrConnLost, err), false)
				p.conn.CloseNow()
				return
			}
		}
	}
}
