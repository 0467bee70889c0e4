package relay

import "errors"

// Errors of the relay package.
var (
	// ErrRunning is returned by Relay.Run when the relay is already running.
	ErrRunning = errors.New("relay already running")
	// ErrInvalidConfig is returned (wrapped) by constructors for unusable settings.
	ErrInvalidConfig = errors.New("invalid relay config")
	// ErrBadMessage is returned (wrapped) when a message is not an mcpes event.
	ErrBadMessage = errors.New("not an mcpes event message")
)
