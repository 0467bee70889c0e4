package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/domain"
)

// Connection is one open connection as the API shows it.
type Connection struct {
	// Owner is the owner, or "app" (domain.ScopeWordApp) for the shared repository.
	Owner  string `json:"owner"`
	Server string `json:"server"`
	ConnID string `json:"connId"`
	// ConfigScope is where the config it was built from came from.
	ConfigScope domain.Scope `json:"configScope,omitempty"`
	// ConfigPosition is the log position of the config it was built from (the
	// server's "position" then); a connection is stale when the server's moved on.
	ConfigPosition uint64    `json:"configPosition"`
	OpenedAt       time.Time `json:"openedAt"`
	LastUsed       time.Time `json:"lastUsed,omitzero"`
	// State is "alive" or "dead" (dead ones are replaced at the next connect).
	State     domain.ConnState `json:"state,omitempty"`
	ToolCount int              `json:"toolCount"`
}

// ConnectionList is the body of GET /v1/connections.
type ConnectionList struct {
	// Owner is the owner the list is for, or "app" for the shared repository.
	Owner       string       `json:"owner"`
	Connections []Connection `json:"connections"`
}

func (a *api) connJSON(c *connections.Connection) Connection {
	out := Connection{Owner: domain.OwnerWord(c.Owner), Server: c.Server, ConnID: c.ConnID, ConfigScope: c.ConfigScope,
		ConfigPosition: c.ConfigVersion, OpenedAt: c.OpenedAt, LastUsed: c.LastUsed(), State: c.State()}
	if st, ok := a.Servers.State(c.ConfigScope, c.Server); ok && st.LastSuccess != nil {
		out.ToolCount = len(st.LastSuccess.Tools)
	}
	return out
}

func (a *api) listConnections(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, err := targetOwner(r, id)
	if err != nil {
		return err
	}
	out := ConnectionList{Owner: domain.OwnerWord(owner), Connections: []Connection{}}
	loaded := a.Manager.Repo(owner).GetLoaded()
	if a.ConnProjection == nil {
		for _, c := range loaded {
			out.Connections = append(out.Connections, a.connJSON(c))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	// The log's view (which also knows connections this process did not open), with
	// the details of the ones held here.
	here := make(map[string]*connections.Connection, len(loaded))
	for _, c := range loaded {
		here[c.ConnID] = c
	}
	for _, c := range a.ConnProjection.Open(owner) {
		if held, ok := here[c.ConnID]; ok {
			out.Connections = append(out.Connections, a.connJSON(held))
			continue
		}
		out.Connections = append(out.Connections, Connection{Owner: domain.OwnerWord(c.Owner), Server: c.Server,
			ConnID: c.ConnID, ConfigPosition: c.ConfigVersion, OpenedAt: c.Since})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) connect(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	ctx := connections.WithActor(r.Context(), id.Actor())
	c, err := a.Manager.Repo(owner).Get(ctx, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.connJSON(c))
	return nil
}

// DisconnectResponse is the body of DELETE /v1/connections/{name}.
type DisconnectResponse struct {
	Server string `json:"server"`
	// Disconnected is false when there was no open connection.
	Disconnected bool `json:"disconnected"`
}

func (a *api) disconnect(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	repo := a.Manager.Repo(owner)
	had := false
	for _, c := range repo.GetLoaded() {
		if c.Server == name {
			had = true
		}
	}
	if !had {
		// Nothing to close: 404 unless the owner can see a server of that name.
		if _, view, _ := a.Servers.Effective(owner, name); !view.Found {
			return notFound(name)
		}
	}
	ctx := connections.WithActor(r.Context(), id.Actor())
	if err := repo.Disconnect(ctx, name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, DisconnectResponse{Server: name, Disconnected: had})
	return nil
}

// refusedRule returns the rule of a *connections.RefusedError in err's chain.
func refusedRule(err error) (domain.Rule, bool) {
	var re *connections.RefusedError
	if errors.As(err, &re) {
		return re.Rule, true
	}
	return "", false
}

func isConnNotFound(err error) bool    { return errors.Is(err, connections.ErrNotFound) }
func isConnUnavailable(err error) bool { return errors.Is(err, connections.ErrUnavailable) }
func isConnRefused(err error) bool     { return errors.Is(err, connections.ErrRefused) }
func isConnClosed(err error) bool      { return errors.Is(err, connections.ErrClosed) }
