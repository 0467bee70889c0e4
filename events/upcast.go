package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrUnknownType is returned by Decode for an event type outside the catalogue.
var ErrUnknownType = errors.New("unknown event type")

// An Upcaster turns the data of one old event type into the next version's type and
// data. Upcasters are pure; stored bytes are never rewritten.
type Upcaster func(data []byte) (newType string, newData []byte, err error)

var upcasters = map[string]Upcaster{
	// v0 registrations (before scopes were explicit) named only the server and carried
	// the config under "server"; they were all app scope.
	"mcpes.server.registered.v0": upcastRegisteredV0,
}

// Upcast applies upcasters until the type has none, at most 16 steps.
func Upcast(typ string, data []byte) (string, []byte, error) {
	for range 16 {
		up, ok := upcasters[typ]
		if !ok {
			return typ, data, nil
		}
		var err error
		if typ, data, err = up(data); err != nil {
			return "", nil, fmt.Errorf("upcast %s: %w", typ, err)
		}
	}
	return "", nil, fmt.Errorf("upcast %s: too many steps", typ)
}

func upcastRegisteredV0(data []byte) (string, []byte, error) {
	var v0 struct {
		Name   string          `json:"name"`
		Server json.RawMessage `json:"server"`
	}
	if err := json.Unmarshal(data, &v0); err != nil {
		return "", nil, err
	}
	if v0.Name == "" || len(v0.Server) == 0 {
		return "", nil, errors.New("v0 registration needs name and server")
	}
	out, err := json.Marshal(map[string]any{"scope": "app", "name": v0.Name, "config": v0.Server})
	return TypeServerRegistered, out, err
}
