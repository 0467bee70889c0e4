package registry

import (
	"errors"
	"fmt"
)

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

// ErrFileSourced is wrapped by *FileSourcedError.
var ErrFileSourced = errors.New("server comes from the config file")

// FileSourcedError refuses an API change or removal of an app server that comes from
// the operator's config file: only the file changes it (edit it, then SIGHUP). File
// and Line say where, when the file was loaded by this process.
type FileSourcedError struct {
	Server string
	File   string
	Line   int
}

func (e *FileSourcedError) Error() string {
	where := "the config file"
	if e.File != "" {
		where += " " + e.File
		if e.Line > 0 {
			where += fmt.Sprintf(" (line %d)", e.Line)
		}
	}
	return fmt.Sprintf("server %s comes from %s: change it there and reload (SIGHUP)", e.Server, where)
}

// Unwrap returns ErrFileSourced.
func (e *FileSourcedError) Unwrap() error { return ErrFileSourced }

// errNoNames is returned when the projection cannot say which per-owner values
// are set (it does not implement SetNames).
var errNoNames = errors.New("registry: the projection does not track per-owner values")
