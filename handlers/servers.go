package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
)

// Server is one server as the API shows it. Secrets in Config are redacted.
type Server struct {
	Name  string       `json:"name"`
	Scope domain.Scope `json:"scope"`
	// Config is the stored config with every header and env value that is not a
	// ${VAR} placeholder replaced by "[redacted]".
	Config domain.ServerConfig `json:"config"`
	// Source is where an app server comes from: "file" (the config file; the API
	// may not change it) or "api". Empty for user-scope servers.
	Source domain.Source `json:"source,omitempty"`
	// ConfigVersion counts the server's configs (1 at registration); Position is
	// the log position of the event that made the current one.
	ConfigVersion uint64    `json:"configVersion"`
	Position      uint64    `json:"position"`
	UpdatedAt     time.Time `json:"updatedAt"`
	// State is a domain.Status word; Reason says why, for failed and requires_oauth.
	State            domain.Status       `json:"state"`
	Reason           string              `json:"reason,omitempty"`
	Inspected        bool                `json:"inspected"`
	InspectionFailed bool                `json:"inspectionFailed"`
	RequiresOAuth    bool                `json:"requiresOAuth"`
	FailureClass     domain.FailureClass `json:"failureClass,omitempty"`
	FailureMessage   string              `json:"failureMessage,omitempty"`
	// Shadowed marks (in lists) an owner's private server hidden by the app server of
	// the same name; PrivateShadowed marks an app server that hides one.
	Shadowed        bool `json:"shadowed,omitempty"`
	PrivateShadowed bool `json:"privateShadowed,omitempty"`
	// MayConnect and Rule are the may-connect verdict for the owner asked about.
	MayConnect bool              `json:"mayConnect"`
	Rule       domain.Rule       `json:"rule,omitempty"`
	ToolCount  int               `json:"toolCount"`
	Tools      []domain.Tool     `json:"tools,omitempty"`
	Inspection *InspectionDetail `json:"inspection,omitempty"`
}

// InspectionDetail is what the last successful inspection found.
type InspectionDetail struct {
	ServerName      string              `json:"serverName,omitempty"`
	ServerVersion   string              `json:"serverVersion,omitempty"`
	ProtocolVersion string              `json:"protocolVersion,omitempty"`
	Capabilities    domain.Capabilities `json:"capabilities"`
	Digest          string              `json:"digest"`
	Instructions    string              `json:"instructions,omitempty"`
	DurationMS      int64               `json:"durationMs"`
	Prompts         []domain.Prompt     `json:"prompts,omitempty"`
	Resources       []domain.Resource   `json:"resources,omitempty"`
}

// serverJSON renders st for owner; view is the policy view it gives that owner.
func serverJSON(owner string, st domain.ServerState, view domain.ConfigView, withTools bool) Server {
	shown := st // what owner may read of it: never an app server's failure message
	shown.FailureMessage = domain.FailureMessageFor(owner, st.Scope, st.FailureClass, st.FailureMessage)
	s := Server{Name: st.Name, Scope: st.Scope, Config: domain.RedactSecrets(st.Config), Source: st.AppSource(),
		ConfigVersion: st.ConfigVersion, Position: st.Version, UpdatedAt: st.UpdatedAt, Inspected: st.Inspected,
		InspectionFailed: st.InspectionFailed, RequiresOAuth: st.RequiresOAuth(),
		FailureClass: st.FailureClass, FailureMessage: shown.FailureMessage, PrivateShadowed: view.Shadowed,
		State: shown.Status(), Reason: shown.Reason()}
	if view.Found {
		s.MayConnect, s.Rule = domain.MayConnect(owner, view)
	}
	if ls := st.LastSuccess; ls != nil {
		s.ToolCount = len(ls.Tools)
		if withTools {
			s.Tools = ls.Tools
			s.Inspection = &InspectionDetail{ServerName: ls.ServerName, ServerVersion: ls.ServerVersion,
				ProtocolVersion: ls.ProtocolVersion, Capabilities: ls.Capabilities, Digest: ls.Digest,
				Instructions: ls.Instructions, DurationMS: ls.DurationMS, Prompts: ls.Prompts, Resources: ls.Resources}
		}
	}
	return s
}

// ServerList is the body of GET /v1/servers.
type ServerList struct {
	// Owner is the owner the list is for ("app" = the app level).
	Owner   string   `json:"owner"`
	Servers []Server `json:"servers"`
}

func (a *api) listServers(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, err := targetOwner(r, id)
	if err != nil {
		return err
	}
	out := ServerList{Owner: domain.OwnerWord(owner), Servers: []Server{}}
	for _, e := range a.Servers.List(owner) {
		st, ok := a.Servers.State(e.Scope, e.Name)
		if !ok || !st.Exists {
			continue // removed between List and State
		}
		s := serverJSON(owner, st, e.View, false)
		s.Shadowed = e.Shadowed
		if e.Shadowed {
			s.MayConnect, s.Rule = false, ""
		}
		out.Servers = append(out.Servers, s)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) getServer(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	st, view, _ := a.Servers.Effective(owner, name)
	if !view.Found {
		return notFound(name)
	}
	if own, ok := a.Servers.State(scopeOf(owner), name); ok && own.Exists {
		w.Header().Set("ETag", etag(own.ConfigVersion)) // for If-Match on PUT
	}
	writeJSON(w, http.StatusOK, serverJSON(owner, st, view, true))
	return nil
}

// PutResponse is the body of PUT /v1/servers/{name}: the server as stored, and what
// the call did.
type PutResponse struct {
	Server
	Created bool `json:"created"`
	// Changed lists the top-level fields that changed (empty when unchanged).
	Changed  []string         `json:"changed"`
	Warnings []domain.Problem `json:"warnings,omitempty"`
}

func (a *api) putServer(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, err := targetOwner(r, id)
	if err != nil {
		return err
	}
	// The name is checked by the registry with the rest of the config, so that an
	// invalid_config error lists every problem.
	name := r.PathValue("name")
	cfg, err := a.decodeServerBody(w, r, name)
	if err != nil {
		return err
	}
	cond, err := precondition(r)
	if err != nil {
		return err
	}
	scope := scopeOf(owner)
	res, err := a.Registry.PutIf(r.Context(), id.Actor(), scope, name, cfg, cond)
	if err != nil {
		return err
	}
	// A config that no longer lets some owner connect evicts that owner's connection.
	if err := a.Manager.Sweep(r.Context(), name); err != nil {
		return err
	}
	st, _ := a.Servers.State(scope, name)
	out := PutResponse{Server: serverJSON(owner, st, st.View(), true), Created: res.Created,
		Changed: res.Changed, Warnings: res.Warnings}
	if out.Changed == nil {
		out.Changed = []string{}
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	w.Header().Set("ETag", etag(res.Version))
	writeJSON(w, status, out)
	return nil
}

// etag is the entity tag of a server's config version.
func etag(configVersion uint64) string { return `"` + strconv.FormatUint(configVersion, 10) + `"` }

// precondition reads PUT's If-None-Match: * (create only) or If-Match: "<config
// version>" (replace only that version, the ETag of GET).
func precondition(r *http.Request) (domain.Precondition, error) {
	var p domain.Precondition
	match, noneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	switch {
	case match != "" && noneMatch != "":
		return p, fmt.Errorf("%w: give If-Match or If-None-Match, not both", ErrInvalidRequest)
	case noneMatch != "":
		if noneMatch != "*" {
			return p, fmt.Errorf("%w: If-None-Match: only * (create only) is supported", ErrInvalidRequest)
		}
		p.Absent = true
	case match != "":
		v, err := strconv.ParseUint(strings.Trim(match, `"`), 10, 64)
		if err != nil || v == 0 || len(match) > 22 {
			return p, fmt.Errorf("%w: If-Match: want the ETag of GET /v1/servers/{name}, a config version such as \"3\"", ErrInvalidRequest)
		}
		p.ConfigVersion = v
	}
	return p, nil
}

// decodeServerBody reads one server config from the request body (at most
// MaxBodyBytes). Unknown fields are kept in the config's Extra. Returns a
// *http.MaxBytesError for an oversized body, ErrInvalidRequest for malformed JSON or a
// body that is not an object, and a *domain.ValidationError for a field of the wrong
// type.
func (a *api) decodeServerBody(w http.ResponseWriter, r *http.Request, name string) (domain.ServerConfig, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.MaxBodyBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return domain.ServerConfig{}, err
		}
		return domain.ServerConfig{}, fmt.Errorf("%w: read body: %v", ErrInvalidRequest, err)
	}
	return DecodeServerConfig(name, body)
}

// DecodeServerConfig parses one server config from JSON the way PUT /v1/servers does.
// Returns ErrInvalidRequest for malformed JSON or a value that is not an object, and a
// *domain.ValidationError naming the field for a value of the wrong type.
func DecodeServerConfig(name string, body []byte) (domain.ServerConfig, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return domain.ServerConfig{}, fmt.Errorf("%w: empty body, want one server config as a JSON object", ErrInvalidRequest)
	}
	if !json.Valid(trimmed) {
		return domain.ServerConfig{}, fmt.Errorf("%w: body is not valid JSON", ErrInvalidRequest)
	}
	if trimmed[0] != '{' {
		return domain.ServerConfig{}, fmt.Errorf("%w: body must be a JSON object (one server config)", ErrInvalidRequest)
	}
	var cfg domain.ServerConfig
	if err := json.Unmarshal(trimmed, &cfg); err != nil {
		var te *json.UnmarshalTypeError
		field := ""
		if errors.As(err, &te) {
			field = te.Field
		}
		return domain.ServerConfig{}, &domain.ValidationError{Problems: []domain.Problem{{Server: name, Field: field, Reason: err.Error()}}}
	}
	return cfg, nil
}

// RemoveResponse is the body of DELETE /v1/servers/{name}.
type RemoveResponse struct {
	Server  string       `json:"server"`
	Scope   domain.Scope `json:"scope"`
	Removed bool         `json:"removed"`
}

func (a *api) deleteServer(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	scope := scopeOf(owner)
	if err := a.Registry.Remove(r.Context(), id.Actor(), scope, name); err != nil {
		return err
	}
	// Every owner's open connection to it is evicted before the answer.
	if err := a.Manager.Sweep(r.Context(), name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, RemoveResponse{Server: name, Scope: scope, Removed: true})
	return nil
}

func (a *api) reinspect(w http.ResponseWriter, r *http.Request, id Identity) error {
	owner, name, err := ownerAndName(r, id)
	if err != nil {
		return err
	}
	var res registry.ReinspectResult
	if po, ok := a.Registry.(ownerReinspector); ok && owner != "" && a.onDemandApp(name) {
		res, err = po.ReinspectForOwner(r.Context(), id.Actor(), owner, name)
	} else {
		res, err = a.Registry.Reinspect(r.Context(), id.Actor(), scopeOf(owner), name)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// ownerAndName returns the owner the request acts for and the {name} path value,
// checked. Returns ErrInvalidRequest for a bad owner or name.
func ownerAndName(r *http.Request, id Identity) (string, string, error) {
	owner, err := targetOwner(r, id)
	if err != nil {
		return "", "", err
	}
	name := r.PathValue("name")
	if err := domain.ValidateServerName(name); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return owner, name, nil
}

// notFound is "server X not found" (404), for servers that do not exist and for
// servers of other owners alike.
func notFound(name string) error {
	return &domain.ServerError{Name: name, Err: domain.ErrServerNotFound}
}

// ownerReinspector reinspects an on-demand app server for one owner
// (*registry.Service implements it).
type ownerReinspector interface {
	ReinspectForOwner(ctx context.Context, actor, owner, name string) (registry.ReinspectResult, error)
}

// onDemandApp reports whether name is an app server inspected per owner.
func (a *api) onDemandApp(name string) bool {
	st, ok := a.Servers.State(domain.AppScope, name)
	return ok && st.Exists && domain.OnDemand(st.Config)
}
