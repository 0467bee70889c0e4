package domain

import (
	"errors"
	"fmt"
)

// ErrPreconditionFailed is returned when a conditional command finds the server in
// another state than the caller last saw (HTTP If-Match / If-None-Match).
var ErrPreconditionFailed = errors.New("precondition failed")

// Precondition is what a conditional command expects of a server before it acts: it
// lets two writers racing on one config see exactly one win.
type Precondition struct {
	// Absent requires that the server does not exist (If-None-Match: *).
	Absent bool
	// ConfigVersion, when not 0, requires the server at that config version
	// (If-Match, with the ETag of GET /v1/servers/{name}).
	ConfigVersion uint64
}

// Check returns a *ServerError wrapping ErrPreconditionFailed when st, the state of
// server name, does not meet p.
func (p Precondition) Check(name string, st ServerState) error {
	switch {
	case p.Absent && st.Exists:
		return &ServerError{Name: name, Err: fmt.Errorf("%w: it exists (config version %d)", ErrPreconditionFailed, st.ConfigVersion)}
	case p.ConfigVersion != 0 && !st.Exists:
		return &ServerError{Name: name, Err: fmt.Errorf("%w: it does not exist", ErrPreconditionFailed)}
	case p.ConfigVersion != 0 && st.ConfigVersion != p.ConfigVersion:
		return &ServerError{Name: name, Err: fmt.Errorf("%w: config version %d, not %d", ErrPreconditionFailed, st.ConfigVersion, p.ConfigVersion)}
	}
	return nil
}
