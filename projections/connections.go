package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// ConnInfo is one open connection as the log tells it.
type ConnInfo struct {
	// Owner is "" for the shared (app-level) repository.
	Owner  string `json:"owner"`
	Server string `json:"server"`
	ConnID string `json:"connId"`
	// Since is the time of the connection.opened event, Position its log position.
	Since    time.Time `json:"since"`
	Position uint64    `json:"position"`
	// ConfigVersion is the config version the connection was built from.
	ConfigVersion uint64 `json:"configVersion"`
}

type connKey struct{ owner, server string }

// Connections is the connections projection: which connections each owner has open
// (connection.opened opens one; connection.evicted and connection.lost close it),
// since when and from which config version. Safe for concurrent use; Apply is its
// store.Observer.
type Connections struct {
	follower
	mu   sync.RWMutex
	open map[connKey]ConnInfo
}

// NewConnections returns an empty connections projection at position 0.
func NewConnections() *Connections {
	c := &Connections{open: map[connKey]ConnInfo{}}
	c.fold = c.foldEvent
	return c
}

// Apply folds committed events; it has the signature of a store.Observer (see
// Servers.Apply for the ordering rules).
func (c *Connections) Apply(evs []events.Envelope) { c.applyEnvelopes(evs) }

// parseConnSubject splits "conn/<owner>/<server>", mapping "_" to the shared owner "".
func parseConnSubject(subject string) (owner, server string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "conn/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	owner, server = rest[:i], rest[i+1:]
	if owner == domain.SharedOwner {
		owner = ""
	}
	return owner, server, true
}

func (c *Connections) foldEvent(ev *rawEvent) error {
	switch ev.typ {
	case events.TypeConnectionOpened, events.TypeConnectionEvicted, events.TypeConnectionLost:
	default:
		if events.Area(ev.typ) != "connection" || isKnownConnType(ev.typ) {
			return nil
		}
		return c.foldDecoded(ev) // an older version: upcast through the codec
	}
	owner, server, ok := parseConnSubject(ev.subject)
	if !ok {
		return fmt.Errorf("%w: connection event with subject %q", events.ErrCorrupt, ev.subject)
	}
	// The current versions are read field by field: replay speed depends on it, as
	// connection events are most of a log.
	var rawID, inputs []byte
	if err := events.EachField(ev.data, func(k, v []byte) bool {
		switch string(k) {
		case "connId":
			rawID = v
		case "inputs":
			inputs = v
		}
		return rawID == nil || (inputs == nil && ev.typ == events.TypeConnectionOpened)
	}); err != nil {
		return err
	}
	connID := string(events.Unquote(rawID))
	k := connKey{owner, server}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.typ {
	case events.TypeConnectionOpened:
		ver := parseUint(events.Field(events.Field(inputs, "config"), "version"))
		c.open[k] = ConnInfo{Owner: owner, Server: server, ConnID: connID, Since: ev.time(), Position: ev.pos, ConfigVersion: ver}
	default:
		if cur, ok := c.open[k]; ok && (connID == "" || cur.ConnID == connID) {
			delete(c.open, k)
		}
	}
	c.pos.Store(ev.pos)
	return nil
}

func isKnownConnType(t string) bool {
	switch t {
	case events.TypeConnectionOpened, events.TypeConnectionOpenFailed, events.TypeConnectionRefused,
		events.TypeConnectionEvicted, events.TypeConnectionLost:
		return true
	}
	return false
}

func (c *Connections) foldDecoded(ev *rawEvent) error {
	fact, err := events.Decode(events.Envelope{Type: ev.typ, Data: ev.data, Sequence: events.Sequence(ev.pos)})
	if errors.Is(err, events.ErrUnknownType) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch f := fact.(type) {
	case domain.ConnectionOpened:
		k := connKey{f.Inputs.Owner, f.Inputs.Server}
		c.open[k] = ConnInfo{Owner: k.owner, Server: k.server, ConnID: f.ConnID, Since: ev.time(),
			Position: ev.pos, ConfigVersion: f.Inputs.Config.Version}
	case domain.ConnectionEvicted:
		c.closeLocked(connKey{f.Inputs.Owner, f.Inputs.Server}, f.ConnID)
	case domain.ConnectionLost:
		c.closeLocked(connKey{f.Owner, f.Server}, f.ConnID)
	}
	c.pos.Store(ev.pos)
	return nil
}

func (c *Connections) closeLocked(k connKey, connID string) {
	if cur, ok := c.open[k]; ok && (connID == "" || cur.ConnID == connID) {
		delete(c.open, k)
	}
}

// Open returns owner's open connections ("" = the shared repository), by server.
func (c *Connections) Open(owner string) []ConnInfo {
	c.mu.RLock()
	var out []ConnInfo
	for k, v := range c.open {
		if k.owner == owner {
			out = append(out, v)
		}
	}
	c.mu.RUnlock()
	sortConns(out)
	return out
}

// Get returns the open connection of (owner, server), if the log says one is open.
func (c *Connections) Get(owner, server string) (ConnInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.open[connKey{owner, server}]
	return v, ok
}

// All returns every open connection, by owner then server.
func (c *Connections) All() []ConnInfo {
	c.mu.RLock()
	out := make([]ConnInfo, 0, len(c.open))
	for _, v := range c.open {
		out = append(out, v)
	}
	c.mu.RUnlock()
	sortConns(out)
	return out
}

func sortConns(out []ConnInfo) {
	slices.SortFunc(out, func(a, b ConnInfo) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		return strings.Compare(a.Server, b.Server)
	})
}

type connectionsSnapshot struct {
	snapshotHeader
	Open []ConnInfo `json:"open"`
}

// LoadConnections builds the connections projection from st like Load does for the
// server configs: snapshot (ConnectionsSnapshot), observer, then the tail.
func LoadConnections(ctx context.Context, st store.Store, opts Options) (*Connections, error) {
	c := NewConnections()
	log := opts.logger()
	if !opts.NoSnapshot {
		if err := c.loadSnapshot(ctx, st); err != nil {
			log.Warn("connections snapshot discarded, rebuilding from the log", "err", err)
			c = NewConnections()
		}
	}
	c.startLoading(st, log)
	st.Observe(c.Apply)
	if err := c.replay(ctx, st, 0); err != nil {
		return nil, fmt.Errorf("load connections projection: %w", err)
	}
	return c, nil
}

func (c *Connections) loadSnapshot(ctx context.Context, st store.Store) error {
	pos, data, err := st.LoadSnapshot(ctx, ConnectionsSnapshot)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var snap connectionsSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if snap.Format != ConnectionsFormat || snap.Position != pos {
		return fmt.Errorf("snapshot format %d at %d, want format %d at %d", snap.Format, snap.Position, ConnectionsFormat, pos)
	}
	if err := checkSnapshotHash(ctx, st, snap.snapshotHeader); err != nil {
		return err
	}
	for _, ci := range snap.Open {
		c.open[connKey{ci.Owner, ci.Server}] = ci
	}
	return c.restore(snap.snapshotHeader)
}

// Snapshot stores the projection under ConnectionsSnapshot at its position.
func (c *Connections) Snapshot(ctx context.Context, st store.Store) error {
	c.wmu.Lock()
	snap := connectionsSnapshot{snapshotHeader: c.header(ConnectionsFormat), Open: c.All()}
	c.wmu.Unlock()
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("encode connections snapshot: %w", err)
	}
	if err := st.SaveSnapshot(ctx, ConnectionsSnapshot, snap.Position, data); err != nil {
		return fmt.Errorf("save connections snapshot: %w", err)
	}
	return nil
}

// ConnectionsAsOf returns the connections projection at log position pos, replayed
// from position 0.
func ConnectionsAsOf(ctx context.Context, st store.Store, pos uint64) (*Connections, error) {
	c := NewConnections()
	if pos == 0 {
		return c, nil
	}
	if err := c.replay(ctx, st, pos); err != nil {
		return nil, fmt.Errorf("connections as of %d: %w", pos, err)
	}
	return c, nil
}
