package relay

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// outgoing is one event ready to publish: its payload and the fields its metadata
// needs, taken from the stored record without a full decode and re-encode.
type outgoing struct {
	seq     uint64
	id      string
	typ     string
	subject string
	corr    string
	area    string // the area topic, "" when none
	payload []byte
}

// message builds a fresh watermill message (a retry must not reuse acked ones).
func (o *outgoing) message() *message.Message {
	m := message.NewMessage(o.id, o.payload)
	m.Metadata = message.Metadata{
		MetaType:      o.typ,
		MetaSubject:   o.subject,
		MetaSequence:  strconv.FormatUint(o.seq, 10),
		MetaNatsMsgID: o.id,
	}
	if o.corr != "" {
		m.Metadata[MetaCorrelationID] = o.corr
	}
	return m
}

// recordHead is the part of the canonical JSON the metadata needs.
type recordHead struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Subject       string          `json:"subject"`
	Sequence      events.Sequence `json:"sequence"`
	CorrelationID string          `json:"correlationid"`
}

var errBatchFull = errors.New("batch full")

// readBatch reads up to limit stored records from position from and turns each into
// an outgoing event. The payload is the canonical JSON with the hash appended as its
// last member, byte for byte what json.Marshal gives for the envelope with Hash set.
// Returns the store's error, or events.ErrCorrupt (wrapped) for a record that does not
// decode: the relay retries rather than skip it.
func readBatch(ctx context.Context, st store.Store, from uint64, limit int) ([]outgoing, error) {
	batch := make([]outgoing, 0, limit)
	err := st.ReadRecords(ctx, from, func(pos uint64, rec []byte) error {
		o, err := fromRecord(pos, rec)
		if err != nil {
			return err
		}
		batch = append(batch, o)
		if len(batch) == limit {
			return errBatchFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, fmt.Errorf("read records from %d: %w", from, err)
	}
	return batch, nil
}

func fromRecord(pos uint64, rec []byte) (outgoing, error) {
	hash, canon, err := events.SplitRecord(rec)
	if err != nil {
		return outgoing{}, fmt.Errorf("record %d: %w", pos, err)
	}
	h, err := parseHead(canon)
	if err != nil {
		return outgoing{}, fmt.Errorf("record %d: %w: %v", pos, events.ErrCorrupt, err)
	}
	if uint64(h.Sequence) != pos || h.ID == "" || len(canon) < 2 || canon[len(canon)-1] != '}' {
		return outgoing{}, fmt.Errorf("record %d: %w: sequence %d, id %q", pos, events.ErrCorrupt, h.Sequence, h.ID)
	}
	p := make([]byte, 0, len(canon)+len(`,"hash":""`)+64)
	p = append(p, canon[:len(canon)-1]...)
	p = append(p, `,"hash":"`...)
	p = hex.AppendEncode(p, hash[:])
	p = append(p, `"}`...)
	return outgoing{seq: pos, id: h.ID, typ: h.Type, subject: h.Subject, corr: h.CorrelationID,
		area: AreaTopic(events.Area(h.Type)), payload: p}, nil
}

// parseHead reads canon's head fields with the fast scanner, or with encoding/json
// when the scanner cannot (which also reports malformed JSON). The scanner checks the
// object's structure but not every scalar: records are the store's own json.Marshal
// output, and their bytes are guarded by the hash chain (mcpes verify).
func parseHead(canon []byte) (recordHead, error) {
	if h, ok := scanHead(canon); ok {
		return h, nil
	}
	var h recordHead
	err := json.Unmarshal(canon, &h)
	return h, err
}

// scanHead reads the top-level id, type, subject, sequence and correlationid of a
// JSON object with the events scanner, without decoding the rest. It reports false
// for anything it does not read exactly as encoding/json would (a key that differs
// only in case, an escape it leaves to encoding/json, malformed input), and the
// caller falls back to json.Unmarshal. It checks the structure of the object, not the
// syntax of every scalar.
func scanHead(b []byte) (recordHead, bool) {
	var h recordHead
	ok := true
	err := events.EachField(b, func(key, val []byte) bool {
		ok = h.set(key, val)
		return ok
	})
	return h, ok && err == nil
}

var headKeys = []string{"id", "type", "subject", "sequence", "correlationid"}

// set stores one member if it is a head field. It reports false when the member
// cannot be read the way encoding/json would.
func (h *recordHead) set(key, val []byte) bool {
	if bytes.IndexByte(key, '\\') >= 0 {
		return false
	}
	k := string(key)
	var dst *string
	switch k {
	case "id":
		dst = &h.ID
	case "type":
		dst = &h.Type
	case "subject":
		dst = &h.Subject
	case "correlationid":
		dst = &h.CorrelationID
	case "sequence":
		s := val
		if len(s) >= 2 && s[0] == '"' {
			s = s[1 : len(s)-1]
		}
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return false
		}
		h.Sequence = events.Sequence(n)
		return true
	default:
		for _, hk := range headKeys {
			if strings.EqualFold(k, hk) {
				return false
			}
		}
		return true
	}
	if string(val) == "null" {
		return true
	}
	if len(val) < 2 || val[0] != '"' {
		return false
	}
	raw := val[1 : len(val)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		*dst = string(raw)
		return true
	}
	return json.Unmarshal(val, dst) == nil
}
