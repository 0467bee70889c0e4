package audit

import "errors"

// ErrInvalidArgument is wrapped by every error about a bad owner, server name, time
// or filter passed to this package.
var ErrInvalidArgument = errors.New("invalid argument")
