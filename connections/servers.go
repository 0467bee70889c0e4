package connections

import (
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/store"
)

// NewManager returns a manager whose repositories read servers (which must follow st,
// e.g. projections.Load or Apply registered with st.Observe) and append their
// decisions to st. It panics on a nil store or projection.
func NewManager(st store.Store, servers *projections.Servers, opts Options) *Manager {
	if servers == nil {
		panic("connections: nil server projection")
	}
	return newManager(st, projectionConfigs{servers}, opts)
}

// projectionConfigs adapts the server-config projection.
type projectionConfigs struct{ s *projections.Servers }

func (p projectionConfigs) Effective(owner, name string) (domain.ServerState, domain.ConfigView, uint64) {
	return p.s.Effective(owner, name)
}

// Names lists the servers visible to owner (shadowed private ones excluded).
func (p projectionConfigs) Names(owner string) []string {
	list := p.s.List(owner)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if !e.Shadowed {
			out = append(out, e.Name)
		}
	}
	return out
}
