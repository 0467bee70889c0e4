package connections

import (
	"errors"
	"fmt"

	"github.com/mcpes/mcpes/domain"
)

// Sentinel errors of the connection repository.
var (
	// ErrRefused is wrapped by every *RefusedError: a policy rule (or the circuit
	// breaker) forbids connecting the server for this owner right now.
	ErrRefused = errors.New("connection refused by policy")
	// ErrNotFound is wrapped by a *RefusedError with rule no_config: the owner has no
	// server of that name (HTTP maps it to 404).
	ErrNotFound = errors.New("server not found")
	// ErrUnavailable is wrapped by *ConnectError and by a breaker_open *RefusedError:
	// the upstream could not be reached or initialized (HTTP maps it to 502).
	ErrUnavailable = errors.New("upstream unavailable")
	// ErrClosed is returned by every call on a repository whose manager was closed.
	ErrClosed = errors.New("connection manager closed")
	// ErrRecord is wrapped when a decision could not be appended to the log; the
	// decision's effect was not applied (a new connection is closed again).
	ErrRecord = errors.New("record decision")
)

// RefusedError says which rule refused a connection of Server for Owner. It wraps
// ErrRefused; for rule no_config also ErrNotFound, for breaker_open also
// ErrUnavailable.
type RefusedError struct {
	Owner  string
	Server string
	Rule   domain.Rule
}

func (e *RefusedError) Error() string {
	if e.Rule == domain.RuleNoConfig {
		return fmt.Sprintf("server %s not found for %s", e.Server, domain.OwnerWord(e.Owner))
	}
	return domain.RefusalText(e.Server, e.Owner, e.Rule)
}

// Unwrap returns ErrRefused and, depending on the rule, ErrNotFound or ErrUnavailable.
func (e *RefusedError) Unwrap() []error {
	switch e.Rule {
	case domain.RuleNoConfig:
		return []error{ErrRefused, ErrNotFound}
	case domain.RuleBreakerOpen, domain.RuleStaleNode:
		return []error{ErrRefused, ErrUnavailable}
	}
	return []error{ErrRefused}
}

// ConnectError is a failed connect attempt: the class (upstream.Classify) and the
// cause. It wraps ErrUnavailable and the cause.
type ConnectError struct {
	Server string
	Class  domain.FailureClass
	Err    error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("connect %s (%s): %s", e.Server, e.Class, domain.TidyMessage(e.Err.Error()))
}

// Unwrap returns ErrUnavailable and the cause.
func (e *ConnectError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }
