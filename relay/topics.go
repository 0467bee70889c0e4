package relay

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mcpes/mcpes/events"
)

// Topic names. They contain no dots so that NATS accepts them as stream names and
// subjects as they are.
const (
	// AllTopic carries every event.
	AllTopic = "mcpes_events"
	// ServerTopic carries the server.* events.
	ServerTopic = "mcpes_server"
	// ConnectionTopic carries the connection.* events.
	ConnectionTopic = "mcpes_connection"
	// ToolTopic carries tool.called events.
	ToolTopic = "mcpes_tool"
)

// Topics lists every topic the relay publishes to, AllTopic first.
var Topics = []string{AllTopic, ServerTopic, ConnectionTopic, ToolTopic}

// Metadata keys set on every published message.
const (
	MetaType     = "type"
	MetaSubject  = "subject"
	MetaSequence = "sequence"
	// MetaCorrelationID is watermill's correlation key, the value of
	// middleware.CorrelationIDMetadataKey (not imported: that package pulls in the
	// router's retry and circuit-breaker modules).
	MetaCorrelationID = "correlation_id"
	// MetaNatsMsgID is the JetStream de-duplication header; its value is the event id.
	MetaNatsMsgID = "Nats-Msg-Id"
)

// AreaTopic returns the topic of an event area ("server", "connection", "tool"), or ""
// for an area without its own topic.
func AreaTopic(area string) string {
	switch area {
	case "server":
		return ServerTopic
	case "connection":
		return ConnectionTopic
	case "tool":
		return ToolTopic
	}
	return ""
}

// TopicsFor returns the topics an event of type typ is published to: AllTopic and,
// when the type's area has one, the area topic.
func TopicsFor(typ string) []string {
	if t := AreaTopic(events.Area(typ)); t != "" {
		return []string{AllTopic, t}
	}
	return []string{AllTopic}
}

// Filter selects events for a subscriber. The zero Filter keeps everything.
type Filter struct {
	// Types keeps events whose type is one of these: either the full CloudEvents type
	// ("mcpes.server.inspection_failed.v1") or the short form without prefix and
	// version ("server.inspection_failed"), which matches every version.
	Types []string
	// SubjectPrefix keeps events whose subject (stream) starts with it, e.g.
	// "server/app/" or "conn/alice/".
	SubjectPrefix string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e events.Envelope) bool {
	if f.SubjectPrefix != "" && !strings.HasPrefix(e.Subject, f.SubjectPrefix) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, t := range f.Types {
		if typeMatches(t, e.Type) {
			return true
		}
	}
	return false
}

func typeMatches(want, typ string) bool {
	if want == typ {
		return true
	}
	if strings.HasPrefix(want, "mcpes.") {
		return false
	}
	rest, ok := strings.CutPrefix(typ, "mcpes."+want+".v")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.ParseUint(rest, 10, 32)
	return err == nil
}

// Topic returns the narrowest topic that carries every event the filter can match:
// an area topic when all Types (or a "server/" subject prefix) name one area,
// AllTopic otherwise.
func (f Filter) Topic() string {
	area := ""
	for _, t := range f.Types {
		a := events.Area(t)
		if !strings.HasPrefix(t, "mcpes.") {
			a, _, _ = strings.Cut(t, ".")
		}
		if area != "" && a != area {
			return AllTopic
		}
		area = a
	}
	if area == "" && strings.HasPrefix(f.SubjectPrefix, "server/") {
		area = "server"
	}
	if t := AreaTopic(area); t != "" {
		return t
	}
	return AllTopic
}

// Payload returns the CloudEvents JSON a message carries for e: the envelope with
// its hash. Returns an error only when the envelope cannot be encoded.
func Payload(e events.Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return b, nil
}

// NewMessage builds the watermill message for e with payload p (see Payload): UUID =
// event id, metadata type, subject, sequence, correlation_id and Nats-Msg-Id.
func NewMessage(e events.Envelope, p []byte) *message.Message {
	m := message.NewMessage(e.ID, p)
	m.Metadata = message.Metadata{
		MetaType:      e.Type,
		MetaSubject:   e.Subject,
		MetaSequence:  strconv.FormatUint(uint64(e.Sequence), 10),
		MetaNatsMsgID: e.ID,
	}
	if e.CorrelationID != "" {
		m.Metadata[MetaCorrelationID] = e.CorrelationID
	}
	return m
}

// DecodeMessage returns the envelope a relay message carries. Returns ErrBadMessage
// (wrapped) when the payload is not an event or its id differs from the message UUID.
func DecodeMessage(m *message.Message) (events.Envelope, error) {
	var e events.Envelope
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		return e, fmt.Errorf("%w: message %s: %v", ErrBadMessage, m.UUID, err)
	}
	if e.ID == "" || e.Sequence == 0 || e.Type == "" {
		return e, fmt.Errorf("%w: message %s: id, sequence and type are required", ErrBadMessage, m.UUID)
	}
	if m.UUID != "" && m.UUID != e.ID {
		return e, fmt.Errorf("%w: message uuid %s carries event %s", ErrBadMessage, m.UUID, e.ID)
	}
	return e, nil
}
