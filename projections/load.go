package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Snapshot names and formats. A snapshot whose format differs from the one this code
// writes is discarded and the projection rebuilt from position 0.
const (
	ServersSnapshot     = "servers"
	ServersFormat       = 2 // 2: per-owner value and profile names
	ConnectionsSnapshot = "connections"
	ConnectionsFormat   = 1
)

type serversSnapshot struct {
	snapshotHeader
	Servers  []domain.ServerState `json:"servers"`
	UserVars []ownerNames         `json:"userVars,omitempty"`
	Profiles []ownerNames         `json:"profiles,omitempty"`
	Owned    []ownedInspection    `json:"ownerInspections,omitempty"`
}

// LoadServers is Load for the server-config projection; see Load.
func LoadServers(ctx context.Context, st store.Store, opts Options) (*Servers, error) {
	return Load(ctx, st, opts)
}

// Load builds the server-config projection from st: the stored snapshot (if any, and
// of the current format), then the tail of the log after it, chain-checked from the
// snapshot's hash on. It registers the projection as an observer of st before reading
// the tail, so no commit is lost or applied twice: Apply skips positions it has, and
// events that arrive beyond a gap wait until the tail read fills it.
//
// Returns the store's read error, or an error wrapping events.ErrCorrupt when the
// tail does not chain or a known event does not decode. On error the projection may
// still be registered as an observer of st.
func Load(ctx context.Context, st store.Store, opts Options) (*Servers, error) {
	s := NewServers()
	log := opts.logger()
	if !opts.NoSnapshot {
		if err := s.loadSnapshot(ctx, st); err != nil {
			log.Warn("servers snapshot discarded, rebuilding from the log", "err", err)
			s = NewServers()
		}
	}
	s.startLoading(st, log)
	st.Observe(s.Apply)
	if err := s.replay(ctx, st, 0); err != nil {
		return nil, fmt.Errorf("load servers projection: %w", err)
	}
	return s, nil
}

func (s *Servers) loadSnapshot(ctx context.Context, st store.Store) error {
	pos, data, err := st.LoadSnapshot(ctx, ServersSnapshot)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.restoreSnapshot(ctx, st, pos, data)
}

// restoreSnapshot installs a servers snapshot stored at pos, after checking its
// format, its position and that the log holds, at that position, the event it was
// taken after.
func (s *Servers) restoreSnapshot(ctx context.Context, st store.Store, pos uint64, data []byte) error {
	var snap serversSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if snap.Format != ServersFormat {
		return fmt.Errorf("snapshot format %d, want %d", snap.Format, ServersFormat)
	}
	if snap.Position != pos {
		return fmt.Errorf("snapshot says position %d, stored at %d", snap.Position, pos)
	}
	head, _, err := st.Head(ctx)
	if err != nil {
		return err
	}
	if pos > head {
		return fmt.Errorf("snapshot at %d is beyond the log head %d", pos, head)
	}
	if err := checkSnapshotHash(ctx, st, snap.snapshotHeader); err != nil {
		return err
	}
	for _, state := range snap.Servers {
		k := keyOf(state.Scope, state.Name)
		s.shardFor(state.Name).set(k, slotOf(state))
		if state.Exists {
			s.index(k, true)
		}
	}
	s.restoreOwnerNames(snap.UserVars, snap.Profiles)
	for _, o := range snap.Owned {
		s.setOwnerInspection(o.Owner, o.Server, o.Inspection)
	}
	return s.restore(snap.snapshotHeader)
}

// checkSnapshotHash makes sure the log still has, at the snapshot's position, the
// event the snapshot was taken after: a snapshot of another log is discarded.
func checkSnapshotHash(ctx context.Context, st store.Store, h snapshotHeader) error {
	if h.Position == 0 {
		return nil
	}
	want, err := events.ParseHash(h.Hash)
	if err != nil {
		return err
	}
	var got [32]byte
	found := false
	err = st.ReadRecords(ctx, h.Position, func(pos uint64, rec []byte) error {
		if pos == h.Position {
			got, _, err = events.SplitRecord(rec)
			found = err == nil
		}
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	if !found || got != want {
		return fmt.Errorf("snapshot at %d does not match the log's event there", h.Position)
	}
	return nil
}

// Snapshot stores the projection's state under ServersSnapshot, at its position.
// Returns the store's error.
func (s *Servers) Snapshot(ctx context.Context, st store.Store) error {
	pos, data, err := s.encodeSnapshot()
	if err != nil {
		return err
	}
	if err := st.SaveSnapshot(ctx, ServersSnapshot, pos, data); err != nil {
		return fmt.Errorf("save servers snapshot: %w", err)
	}
	return nil
}

// encodeSnapshot returns the projection's state as a snapshot, and its position.
func (s *Servers) encodeSnapshot() (uint64, []byte, error) {
	s.wmu.Lock() // no fold runs: states and position agree
	snap := serversSnapshot{snapshotHeader: s.header(ServersFormat), Servers: s.States()}
	snap.UserVars, snap.Profiles = s.ownerNames()
	snap.Owned = s.ownedInspections()
	s.wmu.Unlock()
	data, err := json.Marshal(snap)
	if err != nil {
		return 0, nil, fmt.Errorf("encode servers snapshot: %w", err)
	}
	return snap.Position, data, nil
}

// AsOf returns the server-config projection as it was at log position pos, replayed
// from position 0 (it does not follow later commits). A pos beyond the head gives the
// projection at the head. Returns the store's read error or a chain/decoding error.
func AsOf(ctx context.Context, st store.Store, pos uint64) (*Servers, error) {
	s := NewServers()
	if pos == 0 {
		return s, nil
	}
	if err := s.replay(ctx, st, pos); err != nil {
		return nil, fmt.Errorf("servers as of %d: %w", pos, err)
	}
	return s, nil
}

// AsOfTime returns the server-config projection at the last position whose event
// time is at or before t (store.PositionAt), and that position.
func AsOfTime(ctx context.Context, st store.Store, t time.Time) (*Servers, uint64, error) {
	pos, err := st.PositionAt(ctx, t)
	if err != nil {
		return nil, 0, fmt.Errorf("servers as of %s: %w", t.Format(time.RFC3339Nano), err)
	}
	s, err := AsOf(ctx, st, pos)
	return s, pos, err
}

// Rebuild replays the log from position 0 up to until (0 = the head) into both
// projections in one pass: one chain check and one scan per event. It is what
// replay and verify use. Returns the store's read error, or an error wrapping
// events.ErrCorrupt at the first record that does not chain or decode.
func Rebuild(ctx context.Context, st store.Store, until uint64) (*Servers, *Connections, error) {
	s, c := NewServers(), NewConnections()
	rf := newRecordFolder(&s.follower, &c.follower)
	err := scanChecked(ctx, st, 1, events.ZeroHash, until, rf.fold)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuild projections: %w", err)
	}
	return s, c, nil
}

// LoadAll is Load and LoadConnections in one pass over the tail: both snapshots are
// loaded, both projections observe st, and the log after the older snapshot is read
// and chain-checked once for both. Returns the errors Load returns.
func LoadAll(ctx context.Context, st store.Store, opts Options) (*Servers, *Connections, error) {
	s, c := NewServers(), NewConnections()
	log := opts.logger()
	if !opts.NoSnapshot {
		if err := s.loadSnapshot(ctx, st); err != nil {
			log.Warn("servers snapshot discarded, rebuilding from the log", "err", err)
			s = NewServers()
		}
		if err := c.loadSnapshot(ctx, st); err != nil {
			log.Warn("connections snapshot discarded, rebuilding from the log", "err", err)
			c = NewConnections()
		}
	}
	s.startLoading(st, log)
	c.startLoading(st, log)
	st.Observe(s.Apply)
	st.Observe(c.Apply)
	behind := &s.follower
	if c.Position() < s.Position() {
		behind = &c.follower
	}
	behind.wmu.Lock()
	from, prev := behind.pos.Load()+1, behind.lastHash
	behind.wmu.Unlock()
	rf := newRecordFolder(&s.follower, &c.follower)
	err := scanChecked(ctx, st, from, prev, 0, rf.fold)
	if err != nil {
		return nil, nil, fmt.Errorf("load projections: %w", err)
	}
	// Fill any gap left by events observed during the scan, and end loading.
	if err := s.replay(ctx, st, 0); err != nil {
		return nil, nil, fmt.Errorf("load servers projection: %w", err)
	}
	if err := c.replay(ctx, st, 0); err != nil {
		return nil, nil, fmt.Errorf("load connections projection: %w", err)
	}
	return s, c, nil
}
