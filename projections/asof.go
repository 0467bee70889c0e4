package projections

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpes/mcpes/store"
)

// ServersAsOfSeries names the store's series of as-of snapshots of the server-config
// projection (store.SaveSnapshotAt), taken at every multiple of an interval, so that
// the projection at any position is the nearest snapshot plus a bounded tail.
const ServersAsOfSeries = "servers-asof"

// ErrAsOfMismatch is returned by CheckAsOf when a stored as-of snapshot differs from
// the projection rebuilt from the log at its position.
var ErrAsOfMismatch = errors.New("as-of snapshot differs from the log")

// AsOfSnapshot is AsOf starting from the newest as-of snapshot at or before pos
// instead of position 0, and returns the position of that snapshot (0: none was
// used). A snapshot that does not decode or whose position hash is not the log's is
// skipped with a warning on log, and the fold starts at 0. The tail after the
// snapshot is chain-checked from the snapshot's hash. Returns the store's read error
// or a chain/decoding error.
func AsOfSnapshot(ctx context.Context, st store.Store, pos uint64, log *slog.Logger) (*Servers, uint64, error) {
	s, err := nearestAsOf(ctx, st, pos, log)
	if err != nil {
		return nil, 0, err
	}
	from := s.Position()
	if pos > from {
		if err := s.replay(ctx, st, pos); err != nil {
			return nil, 0, fmt.Errorf("servers as of %d: %w", pos, err)
		}
	}
	return s, from, nil
}

// nearestAsOf returns the projection of the newest usable as-of snapshot at or before
// pos, or an empty one.
func nearestAsOf(ctx context.Context, st store.Store, pos uint64, log *slog.Logger) (*Servers, error) {
	at, data, err := st.LoadSnapshotAt(ctx, ServersAsOfSeries, pos)
	if errors.Is(err, store.ErrNotFound) {
		return NewServers(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("servers as of %d: %w", pos, err)
	}
	s := NewServers()
	if err := s.restoreSnapshot(ctx, st, at, data); err != nil {
		if log != nil {
			log.Warn("as-of snapshot discarded, folding from the start", "position", at, "err", err)
		}
		return NewServers(), nil
	}
	return s, nil
}

// BuildAsOf saves the as-of snapshots at every multiple of every up to until (0: the
// head) that come after the newest one stored: it folds the log once from that one.
// Returns how many it saved and the store's or the fold's error.
func BuildAsOf(ctx context.Context, st store.Store, every, until uint64, log *slog.Logger) (int, error) {
	if every == 0 {
		return 0, fmt.Errorf("as-of snapshots: interval 0")
	}
	if until == 0 {
		head, _, err := st.Head(ctx)
		if err != nil {
			return 0, fmt.Errorf("as-of snapshots: head: %w", err)
		}
		until = head
	}
	s, err := nearestAsOf(ctx, st, until, log)
	if err != nil {
		return 0, err
	}
	saved := 0
	for next := (s.Position()/every + 1) * every; next <= until; next += every {
		if err := s.replay(ctx, st, next); err != nil {
			return saved, fmt.Errorf("as-of snapshots: fold to %d: %w", next, err)
		}
		pos, data, err := s.encodeSnapshot()
		if err != nil {
			return saved, err
		}
		if err := st.SaveSnapshotAt(ctx, ServersAsOfSeries, pos, data); err != nil {
			return saved, fmt.Errorf("as-of snapshots: save at %d: %w", pos, err)
		}
		saved++
	}
	return saved, nil
}

// CheckAsOf rebuilds the projection from position 0 and compares it with every stored
// as-of snapshot at its position. Returns how many it checked, and an error wrapping
// ErrAsOfMismatch naming the first that differs (or the store's or fold's error).
func CheckAsOf(ctx context.Context, st store.Store) (int, error) {
	var positions []uint64
	head, _, err := st.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("check as-of snapshots: head: %w", err)
	}
	for pos := head; pos > 0; {
		at, _, err := st.LoadSnapshotAt(ctx, ServersAsOfSeries, pos)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("check as-of snapshots: %w", err)
		}
		positions = append(positions, at)
		pos = at - 1
	}
	s := NewServers()
	for i := len(positions) - 1; i >= 0; i-- {
		at := positions[i]
		if at > 0 {
			if err := s.replay(ctx, st, at); err != nil {
				return 0, fmt.Errorf("check as-of snapshots: fold to %d: %w", at, err)
			}
		}
		_, want, err := s.encodeSnapshot()
		if err != nil {
			return 0, err
		}
		_, got, err := st.LoadSnapshotAt(ctx, ServersAsOfSeries, at)
		if err != nil {
			return 0, fmt.Errorf("check as-of snapshots: %w", err)
		}
		if !bytes.Equal(got, want) {
			return len(positions) - 1 - i, fmt.Errorf("%w: the one at position %d", ErrAsOfMismatch, at)
		}
	}
	return len(positions), nil
}

// RunAsOf saves the as-of snapshots of st in the background until ctx ends: first
// those an existing log lacks, then one each time the head passes a multiple of
// every. It reads the log on its own goroutine and never holds up appends. Errors
// are logged and retried at the next multiple.
func RunAsOf(ctx context.Context, st store.Store, every uint64, log *slog.Logger) {
	if every == 0 {
		return
	}
	var head uint64
	for {
		n, err := BuildAsOf(ctx, st, every, head, log)
		if err != nil && ctx.Err() == nil {
			log.Warn("as-of snapshots", "err", err)
		} else if n > 0 {
			log.Debug("as-of snapshots saved", "count", n, "head", head)
		}
		// Wake when the head reaches the next multiple.
		next := (head/every + 1) * every
		if head, err = st.Wait(ctx, next-1); err != nil {
			return
		}
		head = head / every * every
	}
}
