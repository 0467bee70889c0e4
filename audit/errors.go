package audit

import "errors"

// ErrInvalidArgument is wrapped by every error about a bad owner, server name, time
// or filter passed to this package.
var ErrInvalidArgument = errors.New("invalid argument")

// ErrCheckpoint is wrapped by every error about a checkpoint, a signing or verifier
// key, or a witness record that does not parse or verify.
var ErrCheckpoint = errors.New("bad checkpoint")
