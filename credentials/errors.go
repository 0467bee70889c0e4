package credentials

import "errors"

// Errors of the credential store.
var (
	// ErrNoKey is returned when a secret must be sealed or opened and no key is
	// configured. `mcpes keys gen` prints one to put in MCPES_KEYS.
	ErrNoKey = errors.New("no encryption key configured (run `mcpes keys gen` and set MCPES_KEYS, or name a 0600 key file in credentials.keyFile)")
	// ErrBadKey is returned for a malformed key entry or an unsafe key file.
	ErrBadKey = errors.New("bad encryption key")
	// ErrUnknownKey is returned when a value was sealed under a key id that is not
	// configured (a key was dropped before `mcpes keys rotate` re-sealed its values).
	ErrUnknownKey = errors.New("value sealed under a key that is not configured")
	// ErrDecrypt is returned when a sealed value fails authentication: it was changed,
	// or copied under another record key.
	ErrDecrypt = errors.New("sealed value does not decrypt")
	// ErrPlaintext is returned when a stored value is not sealed while keys are
	// configured and plaintext was not allowed (run `mcpes keys rotate`).
	ErrPlaintext = errors.New("stored secret is not encrypted")
)
