package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpes/mcpes/domain"
)

// Classify maps an error from Dial, Inspect or a Conn method to a failure class:
//
//   - refused: the SSRF guard blocked the address (ErrBlockedAddress)
//   - unsupported: no client for the transport (ErrTransportUnsupported)
//   - auth: HTTP 401/403 or an OAuth challenge
//   - protocol: the peer answered but not in MCP (garbage, bad JSON-RPC, an
//     initialize error, not a streamable-HTTP endpoint, a message over
//     MaxMessageBytes)
//   - timeout: a deadline passed
//   - unreachable: connection refused, DNS failure, command not found, child
//     exited, stream closed, unusable config
//
// A *DialError carries the class decided where it happened. Returns "" for nil.
func Classify(err error) domain.FailureClass {
	if err == nil {
		return ""
	}
	var de *DialError
	if errors.As(err, &de) && de.Class != "" {
		return de.Class
	}
	var netErr net.Error
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var synErr *json.SyntaxError
	var typErr *json.UnmarshalTypeError
	var trErr *transport.Error
	switch {
	case errors.Is(err, ErrBlockedAddress):
		return domain.FailureRefused
	case errors.Is(err, ErrTransportUnsupported):
		return domain.FailureUnsupported
	case errors.Is(err, ErrAuth), client.IsAuthorizationRequiredError(err),
		client.IsOAuthAuthorizationRequiredError(err), errors.Is(err, transport.ErrUnauthorized),
		errors.Is(err, transport.ErrAuthorizationRequired), errors.Is(err, transport.ErrOAuthAuthorizationRequired):
		return domain.FailureAuth
	case errors.Is(err, ErrProtocol), errors.Is(err, ErrMessageTooLarge), errors.Is(err, transport.ErrLegacySSEServer),
		errors.As(err, &synErr), errors.As(err, &typErr),
		strings.Contains(err.Error(), "unexpected content type"), isTooLargeReply(err):
		return domain.FailureProtocol
	case errors.Is(err, ErrChildExited), errors.Is(err, ErrConfig):
		return domain.FailureUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.Canceled), errors.As(err, &netErr) && netErr.Timeout():
		return domain.FailureTimeout
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.Is(err, ErrUnresolvable),
		errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EPIPE),
		errors.Is(err, transport.ErrTransportClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, ErrConnLost), errors.Is(err, ErrClosed), errors.As(err, &trErr):
		return domain.FailureUnreachable
	}
	return domain.FailureProtocol
}

// isNotFound reports whether err says the server does not implement the method:
// a JSON-RPC METHOD_NOT_FOUND, or (streamable HTTP on 2026-07-28, where mcp-go
// sends it as HTTP 404) "session terminated".
func isNotFound(err error) bool {
	return errors.Is(err, mcp.ErrMethodNotFound) || errors.Is(err, transport.ErrSessionTerminated)
}
