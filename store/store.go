// Package store defines the event store contract: one totally ordered, hash-chained,
// durable log of events.Envelope, with per-stream optimistic concurrency, permanent
// idempotency by event id, checkpoints, projection snapshots and sealed secrets.
//
// Implementations: store/memory (the reference model) and store/bolt (durable).
// store/storetest is the conformance suite both must pass.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/mcpes/mcpes/events"
)

// Expected-version values for Append besides a concrete stream version.
const (
	// AnyVersion skips the concurrency check.
	AnyVersion int64 = -1
	// NoStream requires that the stream has no events yet.
	NoStream int64 = 0
)

// Errors of the store contract.
var (
	// ErrVersionConflict is returned (wrapped in *ConflictError) when a stream's version
	// is not the expected one. Nothing of that Append was stored.
	ErrVersionConflict = errors.New("stream version conflict")
	// ErrClosed is returned by every call on a closed store.
	ErrClosed = errors.New("store closed")
	// ErrNotFound is returned for a missing checkpoint, snapshot or secret.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is returned for arguments that cannot be stored (empty stream,
	// envelope fields missing, a stream that differs from an envelope's subject).
	ErrInvalid = errors.New("invalid append")
)

// ConflictError reports the versions of a failed optimistic-concurrency check.
type ConflictError struct {
	Stream   string
	Expected int64
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return "stream " + e.Stream + ": " + ErrVersionConflict.Error() +
		" (expected " + itoa(uint64(max(e.Expected, 0))) + ", actual " + itoa(e.Actual) + ")"
}

func (e *ConflictError) Unwrap() error { return ErrVersionConflict }

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// AppendResult says where an Append's events are. For an event whose id was already
// stored, its earlier position is reported and Duplicates counts it.
type AppendResult struct {
	// Positions has one entry per appended envelope, in argument order.
	Positions []uint64
	// StreamVersion is the stream's version after the append.
	StreamVersion uint64
	// Duplicates counts envelopes that were already stored (same id).
	Duplicates int
}

// Append is one append of a BatchAppender's batch: the arguments of Store.Append.
type Append struct {
	Stream   string
	Expected int64
	Events   []events.Envelope
}

// BatchAppender is a Store that commits several appends, in their order, together
// (store/bolt): one durable commit for the lot rather than one each. When one fails,
// the ones after it are not stored.
type BatchAppender interface {
	AppendBatch(ctx context.Context, batch []Append) ([]AppendResult, error)
}

// Observer receives committed events: every position once, in order. It runs on its
// own goroutine (see Observers), while the store commits later appends, and an Append
// returns only after each observer has seen its events, so a projection fed by one
// lets a writer read its own write. An observer that stays in one call longer than
// the stall bound, or falls a queue behind, is no longer waited for and catches up
// from the log: it can never stop appends from committing or returning, but while it
// is behind, its readers do not see their own writes. It must not call back into the
// store's write path.
type Observer func(committed []events.Envelope)

// Store is the event log. All methods are safe for concurrent use.
type Store interface {
	// Append atomically appends evs to stream when its version equals expected
	// (AnyVersion skips the check; NoStream requires an empty stream). Each envelope's
	// Subject must equal stream. The store seals each envelope (sequence, stream
	// version, prevhash, hash). An envelope whose ID is already stored is not stored
	// again; its earlier position is returned. Returns after the data is durable.
	// Returns *ConflictError (ErrVersionConflict) when the version differs.
	Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) (AppendResult, error)

	// ReadStream returns up to limit events of stream with StreamVersion >= from.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]events.Envelope, error)
	// ReadAll returns up to limit events with position >= from, in position order.
	ReadAll(ctx context.Context, from uint64, limit int) ([]events.Envelope, error)
	// ReadRecords is ReadAll for raw stored records (see events.EncodeRecord), for
	// verification and fast replay; fn is called in position order and the bytes are
	// valid only during the call. Returning an error from fn stops the scan.
	ReadRecords(ctx context.Context, from uint64, fn func(pos uint64, rec []byte) error) error
	// Head returns the last committed position (0 when empty) and its hash.
	Head(ctx context.Context) (uint64, [32]byte, error)
	// Tree returns a copy of the Merkle tree over the log (see Tree): its size is the
	// head and its root commits to every event up to it.
	Tree(ctx context.Context) (*Tree, error)
	// PositionAt returns the last position whose event time is <= t (0 if none).
	PositionAt(ctx context.Context, t time.Time) (uint64, error)
	// StreamVersion returns a stream's current version (0 when it has no events).
	StreamVersion(ctx context.Context, stream string) (uint64, error)

	// Wait blocks until the head is beyond after, or ctx ends, and returns the head.
	// It is woken by commits; it does not poll.
	Wait(ctx context.Context, after uint64) (uint64, error)
	// Observe registers fn to receive every commit from now on, and returns the func
	// that unregisters it (see Observers.Add).
	Observe(fn Observer) (stop func())

	// Checkpoint returns a consumer's stored position (ErrNotFound if never set).
	Checkpoint(ctx context.Context, name string) (uint64, error)
	// SetCheckpoint stores a consumer's position durably.
	SetCheckpoint(ctx context.Context, name string, pos uint64) error

	// SaveSnapshot stores a projection snapshot taken at position pos.
	SaveSnapshot(ctx context.Context, name string, pos uint64, data []byte) error
	// LoadSnapshot returns the snapshot stored under name (ErrNotFound if none).
	LoadSnapshot(ctx context.Context, name string) (pos uint64, data []byte, err error)
	// SaveSnapshotAt stores one snapshot of the series name, taken at position pos,
	// beside the others of that series (one at the same pos is replaced). Series are
	// apart from the single snapshots of SaveSnapshot.
	SaveSnapshotAt(ctx context.Context, name string, pos uint64, data []byte) error
	// LoadSnapshotAt returns the snapshot of the series name with the greatest position
	// <= pos, and that position (ErrNotFound if the series has none there).
	LoadSnapshotAt(ctx context.Context, name string, pos uint64) (at uint64, data []byte, err error)

	// Streams calls fn with the name of every stream that has events and starts with
	// prefix ("" lists all), in byte order. An error of fn stops the listing.
	Streams(ctx context.Context, prefix string, fn func(stream string) error) error

	// PutSecret stores a secret value under ref, outside the hash-chained log, so that
	// events carry only the reference. Storing the same ref twice is a no-op.
	PutSecret(ctx context.Context, ref string, value []byte) error
	// Secret returns the value stored under ref (ErrNotFound if none).
	Secret(ctx context.Context, ref string) ([]byte, error)

	// Close releases the store. Pending appends finish or fail with ErrClosed.
	Close() error
}
