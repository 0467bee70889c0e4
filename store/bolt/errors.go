package bolt

import (
	"errors"
	"fmt"
)

// Errors of the bbolt store, besides those of the store contract.
var (
	// ErrLocked is returned by Open when another process holds the data file.
	ErrLocked = errors.New("data file is in use by another process")
	// ErrReadOnly is returned by writes on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrNotStore is returned by Open for a file that is not an mcpes store (a
	// read-only open of an empty or foreign bbolt file).
	ErrNotStore = errors.New("not an mcpes event store")
	// ErrBadFile is wrapped by the *FileError Open returns, before bbolt maps the
	// file, for an existing file that cannot be a usable bbolt database: empty,
	// truncated below what its meta pages say, foreign (no bbolt magic), or with
	// both meta pages damaged (version, checksum). The file is left untouched.
	ErrBadFile = errors.New("unusable data file")
	// ErrInconsistent is wrapped by Check when an internal invariant does not hold.
	ErrInconsistent = errors.New("store is inconsistent")
)

// FileError names a data file Open refused and what is wrong with it. It wraps
// ErrBadFile.
type FileError struct {
	Path    string
	Problem string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("data file %s is unusable: %s", e.Path, e.Problem)
}

func (e *FileError) Unwrap() error { return ErrBadFile }
