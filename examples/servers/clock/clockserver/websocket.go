package clockserver

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/coder/websocket"
	"github.com/mark3labs/mcp-go/server"
)

// maxWebSocketMessage bounds one message a client may send.
const maxWebSocketMessage = 4 << 20

// WebSocketHandler serves s over WebSocket as the official MCP SDKs speak it:
// subprotocol "mcp", one JSON-RPC message per text frame. Requests are handled
// concurrently (a slow tool does not hold the others); notifications from the
// client get no answer.
func WebSocketHandler(s *server.MCPServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mcp"}})
		if err != nil {
			return // Accept answered the client
		}
		if conn.Subprotocol() != "mcp" {
			conn.Close(websocket.StatusPolicyViolation, `subprotocol "mcp" required`)
			return
		}
		conn.SetReadLimit(maxWebSocketMessage)
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		var wmu sync.Mutex
		var inflight sync.WaitGroup
		defer inflight.Wait()
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				conn.Close(websocket.StatusUnsupportedData, "text frames only")
				return
			}
			inflight.Add(1)
			go func() {
				defer inflight.Done()
				resp := s.HandleMessage(ctx, json.RawMessage(data))
				if resp == nil {
					return
				}
				out, err := json.Marshal(resp)
				if err != nil {
					return
				}
				wmu.Lock()
				defer wmu.Unlock()
				_ = conn.Write(ctx, websocket.MessageText, out)
			}()
		}
	})
}
