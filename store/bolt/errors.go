package bolt

import "errors"

// Errors of the bbolt store, besides those of the store contract.
var (
	// ErrLocked is returned by Open when another process holds the data file.
	ErrLocked = errors.New("data file is in use by another process")
	// ErrReadOnly is returned by writes on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrNotStore is returned by Open for a file that is not an mcpes store (a
	// read-only open of an empty or foreign bbolt file).
	ErrNotStore = errors.New("not an mcpes event store")
	// ErrInconsistent is wrapped by Check when an internal invariant does not hold.
	ErrInconsistent = errors.New("store is inconsistent")
)
