package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sessions of /mcp/{server}. A session is created by initialize and named by the
// Mcp-Session-Id it answers with; it belongs to one owner and one server. Every
// message the gateway sends on an event stream carries an id
// "<stream>-<sequence>"; the last replayBuffer events of a session are kept, so a
// client that lost a stream resumes it with GET and Last-Event-ID (a POST stream
// whose request still runs goes on on the new connection). DELETE ends the
// session and cancels its requests; an unknown or ended session answers 404, a
// request without one 400.

// Bounds of a session's replay buffer.
const (
	replayEvents = 512
	replayBytes  = 4 << 20
)

// DefaultMaxSessions bounds the open /mcp/{server} sessions unless
// Deps.MaxSessions says otherwise.
const DefaultMaxSessions = 10000

// session is one client session of /mcp/{server}.
type session struct {
	id     string
	o      *ownerServer
	server string
	proto  string
	caps   clientCaps

	ctx    context.Context // ends with the session
	cancel context.CancelFunc

	mu       sync.Mutex
	lastUsed time.Time
	ended    bool
	level    int // index in logLevels of the level the client set; -1: none
	subs     map[string]bool
	seq      uint64
	ring     []sseEvent
	ringSize int
	streams  map[string]*stream
	get      *stream // the standalone GET stream
	inflight map[string]context.CancelFunc
	pending  map[string]chan json.RawMessage

	// A subscriptions/listen stream of revision 2026-07-28 (modern.go): the
	// notifications it asked for, and its request id that tags them; nil listen
	// for every other session.
	listen   map[string]bool
	listenID json.RawMessage
}

// clientCaps are the server-to-client requests the client said it answers.
type clientCaps struct {
	sampling, elicitation, roots bool
	urlElicitation               bool // elicitation in URL mode (the -32042 answer)
}

func (c clientCaps) allows(method string) bool {
	switch method {
	case "sampling/createMessage":
		return c.sampling
	case "elicitation/create":
		return c.elicitation
	case "roots/list":
		return c.roots
	}
	return true
}

// sseEvent is one event sent (or to be replayed) on a stream.
type sseEvent struct {
	id, stream string
	data       []byte
}

// stream is one event stream of a session: a POST's answer or the GET stream. w
// is nil while no client connection carries it (its events are only kept).
type stream struct {
	id     string
	w      http.ResponseWriter
	onJSON func(data []byte) bool // POST streams: the answer may still go as JSON
	sse    bool                   // headers written as text/event-stream
	done   bool
	wake   chan struct{} // closed when done
	// cancels end the requests answered on the stream, when its client went away
	// and did not come back within resumeGrace.
	cancels []func()
}

// resumeGrace is how long the requests of a stream whose client went away keep
// running for it to resume the stream (GET with Last-Event-ID) before they are
// cancelled: a client that drops its request without resuming gave up on it.
const resumeGrace = 2 * time.Second

// abandon cancels st's requests unless a client carries st again.
func (s *session) abandon(st *stream) {
	s.mu.Lock()
	var cancels []func()
	if st.w == nil && !st.done {
		cancels = st.cancels
	}
	s.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

func levelIndex(l string) int {
	for i, x := range logLevels {
		if x == l {
			return i
		}
	}
	return -1
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newStream opens a stream on the session; POST streams start undecided.
func (s *session) newStream(prefix string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	st := &stream{id: prefix + strconv.FormatUint(s.seq, 36), wake: make(chan struct{})}
	s.streams[st.id] = st
	return st
}

// attach makes w carry st, writing the event-stream headers.
func (s *session) attach(st *stream, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Mcp-Session-Id", s.id)
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	st.w, st.sse, st.onJSON = w, true, nil
}

// detach stops w from carrying st (its client went away).
func (s *session) detach(st *stream, w http.ResponseWriter) {
	s.mu.Lock()
	if st.w == w {
		st.w = nil
	}
	s.mu.Unlock()
}

// send puts one message on st (the GET stream when st is nil). A final message
// (the answer of a POST stream) ends the stream; when nothing else went on it
// and its POST still waits, the answer goes as plain JSON. It reports false when
// there is no stream to carry the message (no GET stream, or st ended).
func (s *session) send(st *stream, msg []byte, final bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == nil {
		st = s.get
	}
	if st == nil || st.done {
		return false
	}
	if final && !st.sse && st.onJSON != nil {
		if st.onJSON(msg) {
			st.w, st.onJSON = nil, nil
			s.finish(st)
			return true
		}
	}
	if !st.sse && st.w != nil {
		s.attach(st, st.w)
	}
	st.onJSON = nil
	s.seq++
	ev := sseEvent{id: st.id + "-" + strconv.FormatUint(s.seq, 36), stream: st.id, data: msg}
	s.keep(ev)
	if st.w != nil && !writeEvent(st.w, ev) {
		st.w = nil
	}
	if final {
		s.finish(st)
	}
	return true
}

// stream makes st an event stream if it is still undecided.
func (s *session) stream(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !st.sse && st.w != nil && !st.done {
		s.attach(st, st.w)
	}
}

// finish ends st; the caller holds s.mu.
func (s *session) finish(st *stream) {
	if st.done {
		return
	}
	st.done = true
	close(st.wake)
	delete(s.streams, st.id)
}

// keep adds ev to the replay buffer, dropping the oldest beyond its bounds.
func (s *session) keep(ev sseEvent) {
	s.ring = append(s.ring, ev)
	s.ringSize += len(ev.data)
	for len(s.ring) > replayEvents || s.ringSize > replayBytes {
		s.ringSize -= len(s.ring[0].data)
		s.ring[0] = sseEvent{}
		s.ring = s.ring[1:]
	}
}

func writeEvent(w http.ResponseWriter, ev sseEvent) bool {
	var b strings.Builder
	b.Grow(len(ev.data) + len(ev.id) + 24)
	b.WriteString("event: message\nid: ")
	b.WriteString(ev.id)
	b.WriteString("\ndata: ")
	b.Write(ev.data)
	b.WriteString("\n\n")
	// A client that stops reading must not hold the session (its lock is held
	// here, and upstream notifications wait for it): give each write a bound.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(writeBound))
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	if _, err := w.Write([]byte(b.String())); err != nil {
		return false
	}
	err := rc.Flush()
	return err == nil || errors.Is(err, http.ErrNotSupported)
}

// writeBound is how long one event may take to write before its client is
// treated as gone (the event stays in the replay buffer).
const writeBound = 5 * time.Second

// resume replays the events after lastID on w and makes w carry their stream
// from now on. ok is false when lastID is not in the replay buffer.
func (s *session) resume(w http.ResponseWriter, lastID string) (st *stream, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := -1
	for i := range s.ring {
		if s.ring[i].id == lastID {
			at = i
			break
		}
	}
	if at < 0 {
		return nil, false
	}
	sid := s.ring[at].stream
	st = s.streams[sid]
	if st == nil && s.get != nil && s.get.id == sid {
		st = s.get
	}
	s.attach(&stream{}, w) // headers only
	for _, ev := range s.ring[at+1:] {
		if ev.stream == sid && !writeEvent(w, ev) {
			return nil, true
		}
	}
	if st == nil || st.done {
		return nil, true
	}
	st.w, st.sse = w, true
	return st, true
}

// end closes the session: requests cancelled, streams ended. Idempotent.
func (s *session) end() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	for _, st := range s.streams {
		s.finish(st)
	}
	if s.get != nil {
		s.finish(s.get)
	}
	s.mu.Unlock()
	s.cancel()
}

// touch records a use; false when the session has ended.
func (s *session) touch(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUsed = now
	return !s.ended
}

// request sends a server-to-client request on st and waits for the client's
// answer (a JSON-RPC response message).
func (s *session) request(ctx context.Context, st *stream, method string, params json.RawMessage) (json.RawMessage, error) {
	if !s.caps.allows(method) {
		return nil, fmt.Errorf("%w: the client did not declare support for %s", ErrUnsupported, method)
	}
	ch := make(chan json.RawMessage, 1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, ErrSessionEnded
	}
	s.seq++
	id := "mcpes-s" + strconv.FormatUint(s.seq, 36)
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	msg, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      string          `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", id, method, params})
	if err != nil {
		return nil, err
	}
	if st != nil {
		s.mu.Lock()
		done := st.done
		s.mu.Unlock()
		if done {
			st = nil
		}
	}
	if !s.send(st, msg, false) {
		return nil, fmt.Errorf("%w: no stream open to ask the client (%s)", ErrUnsupported, method)
	}
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, ErrSessionEnded
	}
}

// answered routes a client's response to the server-to-client request it answers.
func (s *session) answered(id string, msg json.RawMessage) bool {
	s.mu.Lock()
	ch := s.pending[id]
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case ch <- msg:
	default:
	}
	return true
}
