package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// Event types of the v1 catalogue: mcpes.<area>.<fact>.v<N>.
const (
	TypeServerRegistered            = "mcpes.server.registered.v1"
	TypeServerConfigChanged         = "mcpes.server.config_changed.v1"
	TypeServerRemoved               = "mcpes.server.removed.v1"
	TypeServerInspected             = "mcpes.server.inspected.v1"
	TypeServerInspectionFailed      = "mcpes.server.inspection_failed.v1"
	TypeServerToolsChanged          = "mcpes.server.tools_changed.v1"
	TypeServerReinspectionRequested = "mcpes.server.reinspection_requested.v1"
	TypeConnectionOpened            = "mcpes.connection.opened.v1"
	TypeConnectionOpenFailed        = "mcpes.connection.open_failed.v1"
	TypeConnectionRefused           = "mcpes.connection.refused.v1"
	TypeConnectionEvicted           = "mcpes.connection.evicted.v1"
	TypeConnectionLost              = "mcpes.connection.lost.v1"
	TypeToolCalled                  = "mcpes.tool.called.v1"
	TypeOAuthFlowStarted            = "mcpes.oauth.flow_started.v1"
	TypeOAuthCompleted              = "mcpes.oauth.completed.v1"
	TypeOAuthFailed                 = "mcpes.oauth.failed.v1"
	TypeTokenRefreshed              = "mcpes.token.refreshed.v1"
	TypeTokenRefreshFailed          = "mcpes.token.refresh_failed.v1"
	TypeTokenRevoked                = "mcpes.token.revoked.v1"
	TypeOwnerVarsChanged            = "mcpes.owner.vars_changed.v1"
	TypeOwnerProfileChanged         = "mcpes.owner.profile_changed.v1"
	TypeOwnerInspected              = "mcpes.owner.inspected.v1"
	TypeOwnerInspectionFailed       = "mcpes.owner.inspection_failed.v1"
)

// kind is one row of the catalogue: a domain fact, its CloudEvents type name (which
// carries its version, .v<N>), the stream it belongs to, and how its data decodes.
type kind struct {
	name   string
	goType reflect.Type
	stream func(fact any) string
	decode func(data []byte) (any, error)
}

// row builds a catalogue row for the fact type T.
func row[T any](name string, stream func(T) string) kind {
	return kind{
		name:   name,
		goType: reflect.TypeFor[T](),
		stream: func(fact any) string { return stream(fact.(T)) },
		decode: func(b []byte) (any, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		},
	}
}

// catalogue is the v1 event catalogue: adding an event type is one row here (and its
// type constant above).
var catalogue = []kind{
	row(TypeServerRegistered, func(f domain.ServerRegistered) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerConfigChanged, func(f domain.ServerConfigChanged) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerRemoved, func(f domain.ServerRemoved) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerInspected, func(f domain.ServerInspected) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerInspectionFailed, func(f domain.ServerInspectionFailed) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerToolsChanged, func(f domain.ServerToolsChanged) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeServerReinspectionRequested, func(f domain.ServerReinspectionRequested) string { return domain.ServerStream(f.Scope, f.Name) }),
	row(TypeConnectionOpened, func(f domain.ConnectionOpened) string { return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server) }),
	row(TypeConnectionOpenFailed, func(f domain.ConnectionOpenFailed) string { return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server) }),
	row(TypeConnectionRefused, func(f domain.ConnectionRefused) string { return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server) }),
	row(TypeConnectionEvicted, func(f domain.ConnectionEvicted) string { return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server) }),
	row(TypeConnectionLost, func(f domain.ConnectionLost) string { return domain.ConnStream(f.Owner, f.Server) }),
	row(TypeToolCalled, func(f domain.ToolCalled) string { return domain.ConnStream(f.Owner, f.Server) }),
	row(TypeOAuthFlowStarted, func(f domain.OAuthFlowStarted) string { return domain.ConnStream(f.Owner, f.Server) }),
	row(TypeOAuthCompleted, func(f domain.OAuthCompleted) string { return domain.GrantStream(f.Owner, f.Server) }),
	row(TypeOAuthFailed, func(f domain.OAuthFailed) string { return domain.ConnStream(f.Owner, f.Server) }),
	row(TypeTokenRefreshed, func(f domain.TokenRefreshed) string { return domain.GrantStream(f.Owner, f.Server) }),
	row(TypeTokenRefreshFailed, func(f domain.TokenRefreshFailed) string { return domain.ConnStream(f.Owner, f.Server) }),
	row(TypeTokenRevoked, func(f domain.TokenRevoked) string { return domain.GrantStream(f.Owner, f.Server) }),
	row(TypeOwnerVarsChanged, func(f domain.UserVarsChanged) string { return domain.UserVarsStream(f.Owner, f.Server) }),
	row(TypeOwnerProfileChanged, func(f domain.OwnerProfileChanged) string { return domain.OwnerProfileStream(f.Owner) }),
	row(TypeOwnerInspected, func(f domain.OwnerInspected) string { return domain.OwnerInspectionStream(f.Owner, f.Inspection.Name) }),
	row(TypeOwnerInspectionFailed, func(f domain.OwnerInspectionFailed) string {
		return domain.OwnerInspectionStream(f.Owner, f.Failure.Name)
	}),
}

// byGoType and byName index the catalogue.
var (
	byGoType = make(map[reflect.Type]*kind, len(catalogue))
	byName   = make(map[string]*kind, len(catalogue))
)

func init() {
	for i := range catalogue {
		k := &catalogue[i]
		if byGoType[k.goType] != nil || byName[k.name] != nil {
			panic("events: catalogue row repeats " + k.name + " or " + k.goType.String())
		}
		byGoType[k.goType] = k
		byName[k.name] = k
	}
}

// Types returns every event type of the current catalogue, sorted.
func Types() []string {
	out := make([]string, 0, len(catalogue))
	for _, k := range catalogue {
		out = append(out, k.name)
	}
	slices.Sort(out)
	return out
}

// TypeName returns the CloudEvents type of a domain fact. Returns an error for a value
// that is not in the catalogue.
func TypeName(fact any) (string, error) {
	k, ok := byGoType[reflect.TypeOf(fact)]
	if !ok {
		return "", fmt.Errorf("%T is not in the event catalogue", fact)
	}
	return k.name, nil
}

// Area returns the <area> of a type name ("server", "connection", "tool").
func Area(typ string) string {
	rest, ok := strings.CutPrefix(typ, "mcpes.")
	if !ok {
		return ""
	}
	area, _, _ := strings.Cut(rest, ".")
	return area
}

// Subject returns the stream of a domain fact (server/<scope>/<name> or
// conn/<owner>/<server>).
func Subject(fact any) (string, error) {
	k, ok := byGoType[reflect.TypeOf(fact)]
	if !ok {
		return "", fmt.Errorf("%T is not in the event catalogue", fact)
	}
	return k.stream(fact), nil
}

// Meta is what a writer says about an event besides its payload.
type Meta struct {
	ID            string // a UUIDv7; required
	Source        string // mcpes://<node-id>; required
	Time          time.Time
	Actor         string // admin, owner:<id>, system; required
	Reason        string
	CorrelationID string
	CausationID   string
}

// New builds an unsealed envelope for a domain fact. The store seals it at append.
func New(fact any, m Meta) (Envelope, error) {
	typ, err := TypeName(fact)
	if err != nil {
		return Envelope{}, err
	}
	subject, err := Subject(fact)
	if err != nil {
		return Envelope{}, err
	}
	data, err := json.Marshal(fact)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	if m.ID == "" || m.Source == "" || m.Actor == "" || m.Time.IsZero() {
		return Envelope{}, fmt.Errorf("new %s: id, source, actor and time are required", typ)
	}
	return Envelope{SpecVersion: SpecVersion, ID: m.ID, Source: m.Source, Type: typ, Subject: subject,
		Time: m.Time.UTC(), DataContentType: "application/json", Actor: m.Actor, Reason: m.Reason,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID, Data: data}, nil
}

// Decode returns the domain fact an envelope carries, upcasting older versions of its
// type first. Returns ErrUnknownType for types outside the catalogue.
func Decode(e Envelope) (any, error) {
	typ, data, err := Upcast(e.Type, e.Data)
	if err != nil {
		return nil, err
	}
	k, ok := byName[typ]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	v, err := k.decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Sequence, err)
	}
	return v, nil
}
