package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the decide functions.
var (
	// ErrServerNotFound is returned when a command names a server its scope does not have.
	ErrServerNotFound = errors.New("server not found")
	// ErrServerExists is returned by RegisterServer for a name already registered.
	ErrServerExists = errors.New("server already exists")
	// ErrNotFailed is returned by RequestReinspection for a server that is not failed.
	ErrNotFailed = errors.New("server is not in a failed state")
	// ErrInvalidConfig is wrapped by every *ValidationError.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrMissingVar is wrapped by ExpandVars when a ${VAR} names an unset variable.
	ErrMissingVar = errors.New("environment variable not set")
)

// ServerError names the server a sentinel error is about:
// "server X not found", "server X is not in a failed state".
type ServerError struct {
	Name string
	Err  error
}

func (e *ServerError) Error() string {
	switch e.Err {
	case ErrServerNotFound:
		return fmt.Sprintf("server %s not found", e.Name)
	case ErrServerExists:
		return fmt.Sprintf("server %s already exists", e.Name)
	case ErrNotFailed:
		return fmt.Sprintf("server %s is not in a failed state", e.Name)
	}
	return fmt.Sprintf("server %s: %v", e.Name, e.Err)
}

func (e *ServerError) Unwrap() error { return e.Err }

// Problem is one thing wrong with a config: which server, which field, and why.
type Problem struct {
	Server string `json:"server"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
	// Warning problems (unknown fields) do not make a config invalid.
	Warning bool `json:"warning,omitempty"`
}

func (p Problem) String() string {
	s := "server " + p.Server
	if p.Field != "" {
		s += ", field " + p.Field
	}
	return s + ": " + p.Reason
}

// ValidationError lists every problem found in a config; it wraps ErrInvalidConfig.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid config: " + strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return ErrInvalidConfig }
