package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mcpes/mcpes/registry"
)

// Per-owner values: PUT/GET/DELETE /v1/servers/{name}/vars[?owner=ID] and the
// admin's PUT/GET /v1/owners/{owner}/profile. Values are write-only: responses
// list names and whether each is set, never a value.

// VarsService stores per-owner values (*registry.Service implements it). The
// Registry dependency is used when it implements this interface.
type VarsService interface {
	UserVars(owner, server string, set []string) ([]registry.UserVar, error)
	SetUserVars(ctx context.Context, actor, owner, server string, values map[string]string) error
	ClearUserVars(ctx context.Context, actor, owner, server string, names, set []string) error
	SetProfile(ctx context.Context, actor, owner string, attrs map[string]string) error
}

// VarsReader says which per-owner names are set (*projections.Servers implements
// it). The Servers dependency is used when it implements this interface.
type VarsReader interface {
	UserVarsSet(owner, server string) []string
	ProfileSet(owner string) []string
}

// VarsResponse is the body of the /vars routes.
type VarsResponse struct {
	Server string             `json:"server"`
	Owner  string             `json:"owner"`
	Vars   []registry.UserVar `json:"vars"`
}

// ProfileResponse is the body of the /profile routes.
type ProfileResponse struct {
	Owner string   `json:"owner"`
	Set   []string `json:"set"`
}

// errNoVars is returned when the service was built without per-owner values.
var errNoVars = errors.New("per-owner values are not available in this service")

func (a *api) varsDeps() (VarsService, VarsReader, error) {
	vs, ok1 := a.Registry.(VarsService)
	vr, ok2 := a.Servers.(VarsReader)
	if !ok1 || !ok2 {
		return nil, nil, errNoVars
	}
	return vs, vr, nil
}

// varsTarget returns the owner and server of a /vars request. Per-owner values
// always belong to an owner: the admin names one with ?owner=ID.
func varsTarget(r *http.Request, id Identity) (string, string, error) {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return "", "", err
	}
	if owner == "" {
		return "", "", fmt.Errorf("%w: per-owner values belong to an owner; add ?owner=ID", ErrInvalidRequest)
	}
	return owner, name, nil
}

// varsCall is one request on an owner's values of one server.
type varsCall struct {
	vs          VarsService
	vr          VarsReader
	owner, name string
}

// varsRoute resolves the services and the (owner, server) of a vars request, runs
// act (nil: read only), and answers with the owner's values as they then are.
func (a *api) varsRoute(act func(w http.ResponseWriter, r *http.Request, id Identity, c varsCall) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id Identity) error {
		vs, vr, err := a.varsDeps()
		if err != nil {
			return err
		}
		owner, name, err := varsTarget(r, id)
		if err != nil {
			return err
		}
		c := varsCall{vs: vs, vr: vr, owner: owner, name: name}
		if act != nil {
			if err := act(w, r, id, c); err != nil {
				return err
			}
		}
		return a.writeVars(w, vs, vr, owner, name)
	}
}

func (a *api) putVars(w http.ResponseWriter, r *http.Request, id Identity, c varsCall) error {
	values, err := a.decodeStringMap(w, r)
	if err != nil {
		return err
	}
	return c.vs.SetUserVars(r.Context(), id.Actor(), c.owner, c.name, values)
}

func (a *api) deleteVars(_ http.ResponseWriter, r *http.Request, id Identity, c varsCall) error {
	// The server must be visible to the owner (404 otherwise, as everywhere).
	if _, err := c.vs.UserVars(c.owner, c.name, nil); err != nil {
		return err
	}
	set := c.vr.UserVarsSet(c.owner, c.name)
	return c.vs.ClearUserVars(r.Context(), id.Actor(), c.owner, c.name, r.URL.Query()["name"], set)
}

func (a *api) writeVars(w http.ResponseWriter, vs VarsService, vr VarsReader, owner, name string) error {
	list, err := vs.UserVars(owner, name, vr.UserVarsSet(owner, name))
	if err != nil {
		return err
	}
	if list == nil {
		list = []registry.UserVar{}
	}
	writeJSON(w, http.StatusOK, VarsResponse{Server: name, Owner: owner, Vars: list})
	return nil
}

func (a *api) putProfile(w http.ResponseWriter, r *http.Request, id Identity) error {
	vs, vr, err := a.varsDeps()
	if err != nil {
		return err
	}
	if !id.Admin {
		return ErrNotFound // owner profiles are the admin's to set
	}
	owner := r.PathValue("owner")
	attrs, err := a.decodeStringMap(w, r)
	if err != nil {
		return err
	}
	if err := vs.SetProfile(r.Context(), id.Actor(), owner, attrs); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ProfileResponse{Owner: owner, Set: vr.ProfileSet(owner)})
	return nil
}

func (a *api) getProfile(w http.ResponseWriter, r *http.Request, id Identity) error {
	_, vr, err := a.varsDeps()
	if err != nil {
		return err
	}
	owner := r.PathValue("owner")
	if !id.Admin && id.Owner != owner {
		return ErrNotFound
	}
	set := vr.ProfileSet(owner)
	if set == nil {
		set = []string{}
	}
	writeJSON(w, http.StatusOK, ProfileResponse{Owner: owner, Set: set})
	return nil
}

// decodeStringMap reads a JSON object of strings (at most MaxBodyBytes). Returns a
// *http.MaxBytesError for an oversized body and ErrInvalidRequest otherwise.
func (a *api) decodeStringMap(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: read body: %v", ErrInvalidRequest, err)
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: body must be a JSON object of strings, {\"NAME\": \"value\"}", ErrInvalidRequest)
	}
	if len(m) > 64 {
		return nil, fmt.Errorf("%w: more than 64 values", ErrInvalidRequest)
	}
	return m, nil
}
