package connections

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Connection states held in Connection.state.
const (
	stateAlive  int32 = iota
	stateDead         // the upstream died (Done closed); still in its entry until evicted
	stateClosed       // evicted; no longer in its entry
)

// Connection is one open upstream connection held by a repository. Its fields are
// read-only; use Session (or Upstream) for calls. A Connection returned by Get may be
// evicted at any time afterwards, after which calls on its session fail.
type Connection struct {
	// ConnID identifies the connection in the decision events.
	ConnID string
	Server string
	// Owner is the repository's owner ("" for the shared repository).
	Owner string
	// ConfigScope is where the effective config came from (app or the owner's scope).
	ConfigScope domain.Scope
	// ConfigVersion is the config version the connection was built from.
	ConfigVersion uint64
	// Grant is the id of the OAuth grant the connection was built with ("" for none).
	Grant    string
	OpenedAt time.Time

	sess     Session
	lastUsed atomic.Int64 // unix nanoseconds
	usedTick atomic.Uint64
	// checkedGen is 1 + the change count of the server's name (Manager.changes) read
	// before the hot path last found this connection fresh and allowed (0: never).
	checkedGen atomic.Uint64
	state      atomic.Int32
	stop       chan struct{} // closed when the connection is evicted: ends its watcher
	closeOnce  sync.Once
	stopOnce   sync.Once
}

// Session returns the upstream session, for tool calls.
func (c *Connection) Session() Session { return c.sess }

// LastUsed returns when the connection was last returned by Get, to within the
// manager's tick (one second, or IdleCheck when shorter).
func (c *Connection) LastUsed() time.Time { return time.Unix(0, c.lastUsed.Load()) }

// State returns alive, or dead for a connection whose upstream died (or that was
// evicted).
func (c *Connection) State() domain.ConnState {
	if c.alive() {
		return domain.ConnAlive
	}
	return domain.ConnDead
}

// alive reports whether the connection is usable: not marked dead or closed, and its
// upstream's Done channel still open. It does not allocate.
func (c *Connection) alive() bool {
	if c.state.Load() != stateAlive {
		return false
	}
	select {
	case <-c.sess.Done():
		return false
	default:
		return true
	}
}

func (c *Connection) touch(now time.Time) { c.lastUsed.Store(now.UnixNano()) }

// closeSession closes the upstream once.
func (c *Connection) closeSession() {
	c.closeOnce.Do(func() { _ = c.sess.Close() })
}

// stopWatch ends the connection's watcher without recording a loss.
func (c *Connection) stopWatch() { c.stopOnce.Do(func() { close(c.stop) }) }
