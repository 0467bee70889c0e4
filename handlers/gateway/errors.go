package gateway

import "errors"

// Sentinel errors. Tool, prompt and resource handlers return them wrapped; mcp-go
// turns a handler error into a JSON-RPC error response carrying its message.
var (
	// ErrUnknownName is returned for a prefixed tool, prompt or resource name that
	// does not split into a server and a name.
	ErrUnknownName = errors.New("gateway: unknown name")
	// ErrNotRouted is returned when the owner's repository handed out a connection
	// that has no MCP session to call (a foreign DialFunc).
	ErrNotRouted = errors.New("gateway: connection cannot carry MCP calls")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("gateway: closed")
	// ErrUnauthorized is answered (401) for a request without an identity.
	ErrUnauthorized = errors.New("gateway: unauthorized")
	// ErrBadOwner is answered (400) for a malformed ?owner= of the admin.
	ErrBadOwner = errors.New("gateway: bad owner")
	// ErrUnsupported is answered (JSON-RPC -32601) to a server's request the
	// client session did not declare it answers (sampling, elicitation, roots).
	ErrUnsupported = errors.New("gateway: not supported by the client")
	// ErrSessionEnded is returned for a server's request whose client session
	// ended before it answered.
	ErrSessionEnded = errors.New("gateway: session ended")
)
