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

var typeOf = map[reflect.Type]string{
	reflect.TypeFor[domain.ServerRegistered]():            TypeServerRegistered,
	reflect.TypeFor[domain.ServerConfigChanged]():         TypeServerConfigChanged,
	reflect.TypeFor[domain.ServerRemoved]():               TypeServerRemoved,
	reflect.TypeFor[domain.ServerInspected]():             TypeServerInspected,
	reflect.TypeFor[domain.ServerInspectionFailed]():      TypeServerInspectionFailed,
	reflect.TypeFor[domain.ServerToolsChanged]():          TypeServerToolsChanged,
	reflect.TypeFor[domain.ServerReinspectionRequested](): TypeServerReinspectionRequested,
	reflect.TypeFor[domain.ConnectionOpened]():            TypeConnectionOpened,
	reflect.TypeFor[domain.ConnectionOpenFailed]():        TypeConnectionOpenFailed,
	reflect.TypeFor[domain.ConnectionRefused]():           TypeConnectionRefused,
	reflect.TypeFor[domain.ConnectionEvicted]():           TypeConnectionEvicted,
	reflect.TypeFor[domain.ConnectionLost]():              TypeConnectionLost,
	reflect.TypeFor[domain.ToolCalled]():                  TypeToolCalled,
	reflect.TypeFor[domain.OAuthFlowStarted]():            TypeOAuthFlowStarted,
	reflect.TypeFor[domain.OAuthCompleted]():              TypeOAuthCompleted,
	reflect.TypeFor[domain.OAuthFailed]():                 TypeOAuthFailed,
	reflect.TypeFor[domain.TokenRefreshed]():              TypeTokenRefreshed,
	reflect.TypeFor[domain.TokenRefreshFailed]():          TypeTokenRefreshFailed,
	reflect.TypeFor[domain.TokenRevoked]():                TypeTokenRevoked,
	reflect.TypeFor[domain.UserVarsChanged]():             TypeOwnerVarsChanged,
	reflect.TypeFor[domain.OwnerProfileChanged]():         TypeOwnerProfileChanged,
	reflect.TypeFor[domain.OwnerInspected]():              TypeOwnerInspected,
	reflect.TypeFor[domain.OwnerInspectionFailed]():       TypeOwnerInspectionFailed,
}

// decoders turn the current version's data into the domain fact.
var decoders = map[string]func([]byte) (any, error){}

func register[T any]() {
	decoders[typeOf[reflect.TypeFor[T]()]] = func(b []byte) (any, error) {
		var v T
		err := json.Unmarshal(b, &v)
		return v, err
	}
}

func init() {
	register[domain.ServerRegistered]()
	register[domain.ServerConfigChanged]()
	register[domain.ServerRemoved]()
	register[domain.ServerInspected]()
	register[domain.ServerInspectionFailed]()
	register[domain.ServerToolsChanged]()
	register[domain.ServerReinspectionRequested]()
	register[domain.ConnectionOpened]()
	register[domain.ConnectionOpenFailed]()
	register[domain.ConnectionRefused]()
	register[domain.ConnectionEvicted]()
	register[domain.ConnectionLost]()
	register[domain.ToolCalled]()
	register[domain.OAuthFlowStarted]()
	register[domain.OAuthCompleted]()
	register[domain.OAuthFailed]()
	register[domain.TokenRefreshed]()
	register[domain.TokenRefreshFailed]()
	register[domain.TokenRevoked]()
	register[domain.UserVarsChanged]()
	register[domain.OwnerProfileChanged]()
	register[domain.OwnerInspected]()
	register[domain.OwnerInspectionFailed]()
}

// Types returns every event type of the current catalogue, sorted.
func Types() []string {
	out := make([]string, 0, len(typeOf))
	for _, t := range typeOf {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// TypeName returns the CloudEvents type of a domain fact. Returns an error for a value
// that is not in the catalogue.
func TypeName(fact any) (string, error) {
	t, ok := typeOf[reflect.TypeOf(fact)]
	if !ok {
		return "", fmt.Errorf("%T is not in the event catalogue", fact)
	}
	return t, nil
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
	switch f := fact.(type) {
	case domain.ServerRegistered:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerConfigChanged:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerRemoved:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerInspected:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerInspectionFailed:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerToolsChanged:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ServerReinspectionRequested:
		return domain.ServerStream(f.Scope, f.Name), nil
	case domain.ConnectionOpened:
		return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server), nil
	case domain.ConnectionOpenFailed:
		return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server), nil
	case domain.ConnectionRefused:
		return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server), nil
	case domain.ConnectionEvicted:
		return domain.ConnStream(f.Inputs.Owner, f.Inputs.Server), nil
	case domain.ConnectionLost:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.ToolCalled:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.OAuthFlowStarted:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.OAuthCompleted:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.OAuthFailed:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.TokenRefreshed:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.TokenRefreshFailed:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.TokenRevoked:
		return domain.ConnStream(f.Owner, f.Server), nil
	case domain.UserVarsChanged:
		return domain.UserVarsStream(f.Owner, f.Server), nil
	case domain.OwnerProfileChanged:
		return domain.OwnerProfileStream(f.Owner), nil
	case domain.OwnerInspected:
		return domain.OwnerInspectionStream(f.Owner, f.Inspection.Name), nil
	case domain.OwnerInspectionFailed:
		return domain.OwnerInspectionStream(f.Owner, f.Failure.Name), nil
	}
	return "", fmt.Errorf("%T is not in the event catalogue", fact)
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
	dec, ok := decoders[typ]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	v, err := dec(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Sequence, err)
	}
	return v, nil
}
