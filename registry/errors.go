package registry

import "errors"

// Errors of the registry service. Errors of the decide functions (domain.ErrServerNotFound,
// domain.ErrNotFailed, *domain.ValidationError) are returned unchanged.
var (
	// ErrBlockedURL is wrapped by the error Put returns when a user-scope URL points at an
	// address the SSRF guard refuses (loopback, private, link-local, ...). Nothing is
	// written.
	ErrBlockedURL = errors.New("url blocked by the SSRF guard")
	// ErrNoActor is returned by a command that does not say who sent it.
	ErrNoActor = errors.New("command has no actor")
	// ErrClosed is returned by every command after Close.
	ErrClosed = errors.New("registry closed")
	// ErrConflict is returned when a server stream kept moving under a command after
	// every retry.
	ErrConflict = errors.New("server changed concurrently, retries exhausted")
)

// errNoNames is returned when the projection cannot say which per-owner values
// are set (it does not implement SetNames).
var errNoNames = errors.New("registry: the projection does not track per-owner values")
