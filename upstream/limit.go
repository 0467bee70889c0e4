package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// Every message read from an upstream is bounded by Options.MaxMessageBytes while
// it is read, before mcp-go buffers it: mcp-go reads stdio lines and SSE events
// with bufio and JSON bodies with a decoder, all without a bound.
//
//   - the first holdAfter bytes of a stdio line or an SSE event pass on at once;
//     the rest is held back until the message ends, then passes on too. A message
//     that goes over the limit is cut off there: the held bytes are dropped, the
//     bytes already passed on end as a malformed message (mcp-go skips it), the
//     rest is read and discarded, and when the message was a response its request
//     gets a JSON-RPC error naming the limit in its place, so that call fails and
//     the connection lives on. Holding back keeps mcp-go from buffering up to the
//     limit of a message that is then dropped: an oversized message costs at most
//     the limit once, in chunks;
//   - a JSON body over the limit fails its request with a *TooLargeError; it is
//     held back past holdAfter too, so the decoder never buffers it.

// tooLargeCode is the JSON-RPC error code of a replacement response: a
// server-defined code that mcp-go turns into an error carrying just the message.
const tooLargeCode = -32000

// TooLargeError says an upstream message went over the limit. It wraps
// ErrMessageTooLarge.
type TooLargeError struct{ Limit int64 }

// tooLargePhrase starts every message of a TooLargeError.
const tooLargePhrase = "upstream message exceeds connections.maxMessageBytes"

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s (%d bytes)", tooLargePhrase, e.Limit)
}

func (e *TooLargeError) Unwrap() error { return ErrMessageTooLarge }

// replacement is the JSON-RPC error response that stands in for an oversized
// response to request id.
func replacement(id json.RawMessage, limit int64) []byte {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id,
		"error": map[string]any{"code": tooLargeCode, "message": (&TooLargeError{limit}).Error()}})
	return b
}

// holdAfter is how much of a message passes on before the rest is held back.
const holdAfter = 64 << 10

// queue is the output of a limiter: chunks waiting to be read, and the held-back
// chunks of the message being read.
type queue struct {
	out  [][]byte
	pos  int // read offset in out[0]
	held [][]byte
}

const chunkSize = 64 << 10

func appendChunks(list [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		if n := len(list); n == 0 || len(list[n-1]) == cap(list[n-1]) {
			// Small messages (most) take a small chunk.
			list = append(list, make([]byte, 0, min(chunkSize, max(len(b), 4<<10))))
		}
		last := &list[len(list)-1]
		k := min(len(b), cap(*last)-len(*last))
		*last = append(*last, b[:k]...)
		b = b[k:]
	}
	return list
}

// pass queues b for reading.
func (q *queue) pass(b []byte) { q.out = appendChunks(q.out, b) }

// hold keeps b back until release or discard.
func (q *queue) hold(b []byte) { q.held = appendChunks(q.held, b) }

// release queues the held bytes for reading.
func (q *queue) release() {
	q.out = append(q.out, q.held...)
	q.held = nil
}

// discard drops the held bytes.
func (q *queue) discard() { q.held = nil }

func (q *queue) read(p []byte) int {
	n := 0
	for n < len(p) && len(q.out) > 0 {
		k := copy(p[n:], q.out[0][q.pos:])
		n += k
		q.pos += k
		if q.pos == len(q.out[0]) {
			if len(q.out) == 1 { // keep the last chunk for the next bytes
				q.out[0], q.pos = q.out[0][:0], 0
				break
			}
			q.out[0], q.out, q.pos = nil, q.out[1:], 0
		}
	}
	return n
}

func (q *queue) empty() bool { return len(q.out) == 0 || (len(q.out) == 1 && q.pos == len(q.out[0])) }

// take passes on the first bytes of a message (up to holdAfter in all, counting
// the n bytes it already has) and holds back the rest.
func (q *queue) take(seg []byte, n int64) {
	now := min(max(holdAfter-n, 0), int64(len(seg)))
	q.pass(seg[:now])
	if int64(len(seg)) > now {
		q.hold(seg[now:])
	}
}

// framer is the part of a limiter that knows one framing: it turns a chunk of
// input into output bytes on the queue. At the end of the input, end passes on
// what is held of an unfinished message within the limit.
type framer interface {
	process(b []byte)
	end()
}

// limitReader reads r through a framer.
type limitReader struct {
	r   io.Reader
	f   framer
	q   *queue
	buf []byte
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	for l.q.empty() {
		if l.err != nil {
			return 0, l.err
		}
		n, err := l.r.Read(l.buf)
		l.f.process(l.buf[:n])
		if err != nil {
			l.f.end()
		}
		l.err = err
	}
	return l.q.read(p), nil
}

// dropFunc is told of every oversized message: the error naming the limit and the
// id of the request that got a replacement (nil when none did).
type dropFunc func(err error, id json.RawMessage)

// limitLines bounds each line (one JSON-RPC message on stdio) read from r to limit
// bytes, newline excluded.
func limitLines(r io.Reader, limit int64, onDrop dropFunc) io.Reader {
	q := &queue{}
	return &limitReader{r: r, q: q, buf: make([]byte, 32<<10), f: &lineFramer{q: q, limit: limit, onDrop: onDrop}}
}

type lineFramer struct {
	q      *queue
	limit  int64
	onDrop dropFunc
	n      int64 // bytes of the current line so far
	over   bool
	scan   msgScan
}

func (f *lineFramer) end() {
	if !f.over {
		f.q.release()
	}
}

func (f *lineFramer) process(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i]
		}
		f.scan.feed(seg)
		if !f.over {
			if room := f.limit - f.n; int64(len(seg)) > room {
				// What went on ends here as a line that is not JSON.
				f.q.discard()
				f.q.pass([]byte{'\n'})
				f.over = true
			} else {
				f.q.take(seg, f.n)
			}
		}
		f.n += int64(len(seg))
		if i < 0 {
			return
		}
		if f.over {
			id := f.scan.response()
			if id != nil {
				f.q.pass(append(replacement(id, f.limit), '\n'))
			}
			f.onDrop(&TooLargeError{f.limit}, id)
		} else {
			f.q.release()
			f.q.pass([]byte{'\n'})
		}
		f.n, f.over = 0, false
		f.scan.reset()
		b = b[i+1:]
	}
}

// limitEvents bounds each event of a text/event-stream read from r to limit bytes
// (its lines and their line ends).
func limitEvents(r io.Reader, limit int64, onDrop dropFunc) io.Reader {
	q := &queue{}
	return &limitReader{r: r, q: q, buf: make([]byte, 32<<10), f: &eventFramer{q: q, limit: limit, onDrop: onDrop}}
}

type eventFramer struct {
	q      *queue
	limit  int64
	onDrop dropFunc
	n      int64 // bytes of the current event so far
	over   bool
	scan   msgScan

	lineLen int64   // bytes of the current line so far
	field   [5]byte // the first bytes of the current line
	data    bool    // the current line is a data line, past "data:" and one space
	lines   int     // data lines of the current event
}

func (f *eventFramer) end() {
	if !f.over {
		f.q.release()
	}
}

func (f *eventFramer) process(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		seg := b
		if i >= 0 {
			seg = b[:i+1]
		}
		f.feedLine(seg)
		if !f.over {
			if room := f.limit - f.n; int64(len(seg)) > room {
				// What went on ends here as an event that is not JSON.
				f.q.discard()
				f.q.pass([]byte("\n\n"))
				f.over = true
			} else {
				f.q.take(seg, f.n)
			}
		}
		f.n += int64(len(seg))
		b = b[len(seg):]
		if i < 0 {
			return
		}
		blank := f.lineLen == 1 || (f.lineLen == 2 && f.field[0] == '\r')
		f.lineLen, f.data = 0, false
		if !blank {
			continue
		}
		if f.over {
			id := f.scan.response()
			if id != nil {
				ev := append([]byte("event: message\ndata: "), replacement(id, f.limit)...)
				f.q.pass(append(ev, "\n\n"...))
			}
			f.onDrop(&TooLargeError{f.limit}, id)
		} else {
			f.q.release()
		}
		f.n, f.over, f.lines = 0, false, 0
		f.scan.reset()
	}
}

// feedLine passes the data of a line (a piece of one, ending in its newline when
// it ends) to the scanner.
func (f *eventFramer) feedLine(seg []byte) {
	for len(seg) > 0 {
		if f.data {
			end := len(seg)
			if seg[end-1] == '\n' {
				end--
				if end > 0 && seg[end-1] == '\r' {
					end--
				}
			}
			f.scan.feed(seg[:end])
			f.lineLen += int64(len(seg))
			return
		}
		c := seg[0]
		if f.lineLen < int64(len(f.field)) {
			f.field[f.lineLen] = c
		}
		f.lineLen++
		seg = seg[1:]
		// "data:" and one optional space; mcp-go takes the value after them.
		if f.lineLen == 5 && string(f.field[:]) == "data:" {
			if f.lines > 0 {
				f.scan.feed([]byte{'\n'})
			}
			f.lines++
			if len(seg) > 0 && seg[0] == ' ' {
				f.lineLen++
				seg = seg[1:]
			}
			f.data = true
		}
	}
}

// limitBodies wraps base so every response body is bounded: event streams event by
// event, other bodies as a whole. A body whose declared length is over the limit
// fails at once, unread.
func limitBodies(base http.RoundTripper, limit int64, onDrop dropFunc) http.RoundTripper {
	return &limitTransport{base: base, limit: limit, onDrop: onDrop}
}

type limitTransport struct {
	base   http.RoundTripper
	limit  int64
	onDrop dropFunc
}

func (t *limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		resp.Body = readCloser{limitEvents(resp.Body, t.limit, t.onDrop), resp.Body}
		return resp, nil
	}
	if resp.ContentLength > t.limit {
		resp.Body.Close()
		err := &TooLargeError{t.limit}
		t.onDrop(err, nil)
		return nil, err
	}
	resp.Body = readCloser{newBodyLimiter(resp.Body, t.limit, t.onDrop), resp.Body}
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// bodyLimiter passes a body of at most limit bytes and fails with a
// *TooLargeError when it has more. Past holdAfter bytes it holds the body back
// until its end, so the reader never buffers up to the limit of a body that then
// fails.
type bodyLimiter struct {
	r      io.Reader
	limit  int64
	onDrop dropFunc
	n      int64
	q      queue
	buf    []byte
	err    error
}

func newBodyLimiter(r io.Reader, limit int64, onDrop dropFunc) *bodyLimiter {
	return &bodyLimiter{r: r, limit: limit, onDrop: onDrop, buf: make([]byte, 4<<10)}
}

func (b *bodyLimiter) Read(p []byte) (int, error) {
	for b.q.empty() {
		if b.err != nil {
			return 0, b.err
		}
		if b.n >= holdAfter && len(b.buf) < 32<<10 {
			b.buf = make([]byte, 32<<10) // a large body: read it in larger pieces
		}
		n, err := b.r.Read(b.buf)
		b.n += int64(n)
		if b.n > b.limit {
			b.q.discard()
			b.err = &TooLargeError{b.limit}
			b.onDrop(b.err, nil)
			return 0, b.err
		}
		b.q.take(b.buf[:n], b.n-int64(n))
		if err != nil {
			b.q.release()
			b.err = err
		}
	}
	return b.q.read(p), nil
}

// isTooLargeReply reports whether err is the JSON-RPC error a replacement response
// turned into (mcp-go keeps only its message).
func isTooLargeReply(err error) bool {
	return strings.Contains(err.Error(), tooLargePhrase)
}

// dropped logs an oversized message the connection dropped.
func (c *Conn) dropped(err error, id json.RawMessage) {
	if id != nil {
		c.logger.Warn("upstream message dropped; its request fails", "err", err, "requestID", string(id))
		return
	}
	c.logger.Warn("upstream message dropped", "err", err)
}
