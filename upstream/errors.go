package upstream

import (
	"errors"
	"fmt"

	"github.com/mcpes/mcpes/domain"
)

// Sentinel errors of the upstream adapter. Errors returned by Dial, Inspect and the
// Conn methods wrap one of these or the underlying transport error; Classify maps
// any of them to a domain.FailureClass.
var (
	// ErrTransportUnsupported is returned by Dial for a transport with no client
	// (websocket) or an unknown transport name.
	ErrTransportUnsupported = errors.New("transport not supported")
	// ErrBlockedAddress is wrapped by every *BlockedError: the SSRF guard refused a
	// URL, host or resolved address.
	ErrBlockedAddress = errors.New("blocked address")
	// ErrUnresolvable is returned by Guard.CheckURL when the host does not resolve.
	// The dial-time check still applies when it resolves later.
	ErrUnresolvable = errors.New("host does not resolve")
	// ErrProtocol is wrapped when the peer broke the protocol: non-JSON-RPC output
	// on a stdio server's stdout, or an unusable initialize answer.
	ErrProtocol = errors.New("protocol error")
	// ErrChildExited is wrapped when a stdio server's process exited.
	ErrChildExited = errors.New("server process exited")
	// ErrConnLost is wrapped by calls on a connection that was noticed lost; the
	// cause is Conn.Err.
	ErrConnLost = errors.New("connection lost")
	// ErrClosed is Conn.Err after Close, and is wrapped by calls made after it.
	ErrClosed = errors.New("connection closed")
	// ErrConfig is wrapped when the config cannot be turned into a connection: an
	// unset ${VAR}, a secret reference that does not resolve, a bad URL or command.
	ErrConfig = errors.New("unusable server config")
	// ErrAuth is wrapped when the server answered HTTP 401 or 403.
	ErrAuth = errors.New("authorization required")
	// ErrMessageTooLarge is wrapped by the *TooLargeError of a message from the
	// server longer than Options.MaxMessageBytes (connections.maxMessageBytes).
	ErrMessageTooLarge = errors.New("upstream message too large")
)

// DialError is returned by Dial: which server and transport failed, the failure
// class decided where the failure happened, and the cause. Its message never
// contains header or env values.
type DialError struct {
	Server    string
	Transport string
	Class     domain.FailureClass
	Err       error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("connect %s (%s): %v", e.Server, e.Transport, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// BlockedError says which host or address the SSRF guard refused and why.
type BlockedError struct {
	Host   string
	Addr   string // the resolved address, when the refusal was about one
	Reason string
}

func (e *BlockedError) Error() string {
	if e.Addr != "" && e.Addr != e.Host {
		return fmt.Sprintf("blocked address: host %s resolves to %s (%s)", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("blocked address: host %s (%s)", e.Host, e.Reason)
}

func (e *BlockedError) Unwrap() error { return ErrBlockedAddress }

// redactedError carries a message with secret values replaced while keeping the
// original chain for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
