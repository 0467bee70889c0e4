package gateway

import "net/http"

// admit applies the gateway's own protection before a request reaches an MCP server:
// a body limit (413 when the declared length is over it; a longer body is cut and
// fails to parse). The request-origin policy (Host, Origin, JSON bodies) is the
// API's, applied to /mcp like to every route (handlers.Protection). It writes the
// refusal and returns false.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > g.d.MaxBodyBytes {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, g.d.MaxBodyBytes)
	}
	return true
}
