package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

type drops struct {
	n   int
	ids []string
}

func (d *drops) f(err error, id json.RawMessage) {
	d.n++
	if id != nil {
		d.ids = append(d.ids, string(id))
	}
}

func readAllVia(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// result is a JSON-RPC response whose text makes it n bytes long or more.
func result(id string, n int, idLast bool) string {
	text := strings.Repeat("x", n)
	if idLast { // the TypeScript SDK writes result before id
		return `{"result":{"content":[{"type":"text","text":"` + text + `"}]},"jsonrpc":"2.0","id":` + id + `}`
	}
	return `{"jsonrpc":"2.0","id":` + id + `,"result":{"content":[{"type":"text","text":"` + text + `"}]}}`
}

func TestLimitLines_PassesLinesUpToTheLimitUnchanged(t *testing.T) {
	// given lines up to the limit, read one byte at a time and in halves
	const limit = 200
	in := result("1", 10, false) + "\n\n" + `{"jsonrpc":"2.0","method":"notifications/progress"}` + "\n" +
		strings.Repeat("y", limit) + "\n" + "partial line without newline"
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader, "half": iotest.HalfReader, "whole": func(r io.Reader) io.Reader { return r },
	} {
		var d drops
		// when they go through the limiter
		out := readAllVia(t, limitLines(wrap(strings.NewReader(in)), limit, d.f))
		// then they come out unchanged and nothing is dropped
		if out != in || d.n != 0 {
			t.Fatalf("%s: out %q, %d drops; want the input unchanged", name, out, d.n)
		}
	}
}

func TestLimitLines_ReplacesAnOversizedResponseWithAnErrorForItsRequest(t *testing.T) {
	const limit = 100
	for _, idLast := range []bool{false, true} {
		// given an oversized response to request 7 (id first or last), then a
		// small response to request 8
		in := result("7", 1000, idLast) + "\n" + result("8", 5, false) + "\n"
		var d drops
		// when it goes through the limiter
		out := readAllVia(t, iotest.HalfReader(limitLines(iotest.OneByteReader(strings.NewReader(in)), limit, d.f)))
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		// then a cut, invalid line (what passed before the limit) comes first, then an error response to 7 naming the
		// limit, then response 8 intact
		if len(lines) != 3 || len(lines[0]) > limit || json.Valid([]byte(lines[0])) || !strings.HasPrefix(in, lines[0]) {
			t.Fatalf("idLast=%v: got %d lines %q", idLast, len(lines), out)
		}
		var msg struct {
			ID    int `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(lines[1]), &msg); err != nil || msg.ID != 7 ||
			msg.Error.Message != "upstream message exceeds connections.maxMessageBytes (100 bytes)" {
			t.Fatalf("idLast=%v: replacement %q (%v)", idLast, lines[1], err)
		}
		if lines[2] != result("8", 5, false) {
			t.Fatalf("idLast=%v: the next line changed: %q", idLast, lines[2])
		}
		if d.n != 1 || len(d.ids) != 1 || d.ids[0] != "7" {
			t.Fatalf("idLast=%v: drops %+v", idLast, d)
		}
	}
}

func TestLimitLines_DropsAnOversizedNotificationOrRequestWithoutReply(t *testing.T) {
	const limit = 50
	big := strings.Repeat("z", 500)
	for _, in := range []string{
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"` + big + `"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"x":"` + big + `"}}`,
		`{"jsonrpc":"2.0","id":{"a":1},"result":"` + big + `"}`,
		`{"jsonrpc":"2.0","id":"` + big + `","result":1}`,
	} {
		// given an oversized message that is not a response with a usable id
		var d drops
		// when it goes through the limiter
		out := readAllVia(t, limitLines(strings.NewReader(in+"\n"), limit, d.f))
		// then only a cut line is left and no reply is made up
		cut, _ := strings.CutSuffix(out, "\n")
		if len(cut) > limit || !strings.HasPrefix(in, cut) || strings.Contains(cut, "\n") || d.n != 1 || len(d.ids) != 0 {
			t.Fatalf("in %.60q: out %q, drops %+v", in, out, d)
		}
	}
}

func TestLimitEvents_ReplacesAnOversizedEventAndKeepsTheStream(t *testing.T) {
	const limit = 120
	small := "event: message\nid: 1\ndata: " + result("1", 5, false) + "\n\n"
	in := ": ping\n\n" + small +
		"event: message\r\ndata: " + result("2", 500, true) + "\r\n\r\n" +
		"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\n" +
		"data: \"params\":{\"data\":\"" + strings.Repeat("q", 400) + "\"}}\n\n" +
		small
	var d drops
	// when the stream goes through the limiter
	out := readAllVia(t, limitEvents(iotest.HalfReader(strings.NewReader(in)), limit, d.f))
	// then the small events pass unchanged, the oversized response is cut and
	// followed by an error event for request 2, the oversized notification only cut
	if !strings.HasPrefix(out, ": ping\n\n"+small) || !strings.HasSuffix(out, "\n\n"+small) {
		t.Fatalf("small events changed: %q", out)
	}
	want := `event: message` + "\n" + `data: {"error":{"code":-32000,"message":"upstream message exceeds connections.maxMessageBytes (120 bytes)"},"id":2,"jsonrpc":"2.0"}` + "\n\n"
	if strings.Count(out, want) != 1 {
		t.Fatalf("no replacement event %q in %q", want, out)
	}
	if d.n != 2 || len(d.ids) != 1 || d.ids[0] != "2" {
		t.Fatalf("drops %+v", d)
	}
	for _, ev := range strings.Split(out, "\n\n") {
		if len(ev) > limit+2 && !strings.Contains(ev, "maxMessageBytes") {
			t.Fatalf("an event of %d bytes passed", len(ev))
		}
	}
}

func TestBodyLimiter_FailsPastTheLimit(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{99, true}, {100, true}, {101, false}, {5000, false}} {
		// (sizes around 100; TestBodyLimiter_HoldsBack covers bodies past holdAfter)
		// given a body of size bytes and a limit of 100
		var d drops
		r := newBodyLimiter(iotest.HalfReader(bytes.NewReader(make([]byte, tc.size))), 100, d.f)
		// when it is read whole
		b, err := io.ReadAll(r)
		// then up to the limit it reads, past it the read fails naming the limit
		if tc.ok && (err != nil || len(b) != tc.size || d.n != 0) {
			t.Fatalf("%d bytes: %d read, %v", tc.size, len(b), err)
		}
		var tl *TooLargeError
		if !tc.ok && (!errors.Is(err, ErrMessageTooLarge) || !errors.As(err, &tl) || tl.Limit != 100 || d.n != 1) {
			t.Fatalf("%d bytes: %v, want a *TooLargeError", tc.size, err)
		}
	}
}

func FuzzMsgScan(f *testing.F) {
	for _, s := range []string{
		result("1", 3, false), result(`"abc"`, 3, true), `{"jsonrpc":"2.0","method":"x","id":2}`,
		`{"id":-1.5e3}`, `{"id":null,"result":1}`, `{"a":{"id":1},"id":[1]}`, `{"id":1,"id":"b"}`, `[{"id":1}]`,
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		// A message scanned in two pieces gives what encoding/json reads from it.
		var s msgScan
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		s.feed(in[:cut])
		s.feed(in[cut:])
		got := s.response()
		var m map[string]json.RawMessage
		if bytes.IndexByte(in, '\\') >= 0 || json.Unmarshal(in, &m) != nil {
			return
		}
		want := m["id"]
		if _, method := m["method"]; method || len(want) > maxScannedID || len(want) == 0 ||
			(want[0] != '"' && want[0] != '-' && (want[0] < '0' || want[0] > '9')) {
			want = nil
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("scan of %q: id %q, encoding/json %q", in, got, want)
		}
	})
}

func FuzzLimitLines(f *testing.F) {
	f.Add([]byte(result("1", 40, false)+"\n"+result("2", 2, true)+"\n"), 30)
	f.Add([]byte("\n\n{}\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			return
		}
		out, err := io.ReadAll(limitLines(iotest.HalfReader(bytes.NewReader(in)), int64(limit), func(error, json.RawMessage) {}))
		if err != nil {
			t.Fatal(err)
		}
		longest := 0
		for _, l := range bytes.Split(in, []byte("\n")) {
			longest = max(longest, len(l))
		}
		// Input within the limit passes unchanged; otherwise every output line is
		// within the limit or a replacement.
		if longest <= limit && !bytes.Equal(in, out) {
			t.Fatalf("changed: %q -> %q", in, out)
		}
		for _, l := range bytes.Split(out, []byte("\n")) {
			if len(l) > limit && !bytes.Contains(l, []byte("maxMessageBytes")) {
				t.Fatalf("line of %d bytes passed a limit of %d", len(l), limit)
			}
		}
	})
}

func TestLimiters_HoldBackLongMessagesAndPassThemWholeWithinTheLimit(t *testing.T) {
	const limit = 1 << 20
	long := result("5", 300<<10, false)
	over := result("6", 2<<20, true)
	for name, tc := range map[string]struct {
		limiter      func(io.Reader, int64, dropFunc) io.Reader
		frame        func(string) string
		end, lastCut string
	}{
		"lines":  {limitLines, func(m string) string { return m + "\n" }, "\n", "\n"},
		"events": {limitEvents, func(m string) string { return "data: " + m + "\n\n" }, "\n\n", "\n\n"},
	} {
		// given a message longer than what passes at once but within the limit, one
		// over the limit, and an unfinished one at the end of the input
		in := tc.frame(long) + tc.frame(over) + strings.TrimSuffix(tc.frame(long), tc.end)
		var d drops
		// when read through the limiter
		out := readAllVia(t, tc.limiter(iotest.HalfReader(strings.NewReader(in)), limit, d.f))
		// then the long and the unfinished messages pass whole, and of the one over
		// the limit at most holdAfter bytes went on before its replacement
		first, rest, _ := strings.Cut(out, tc.frame(long))
		if first != "" {
			t.Fatalf("%s: the long message did not come first whole", name)
		}
		cut, rest, _ := strings.Cut(rest, tc.lastCut)
		if len(cut) > holdAfter+len("data: ") || !strings.HasPrefix(tc.frame(over), cut) {
			t.Fatalf("%s: %d bytes of the oversized message went on", name, len(cut))
		}
		if !strings.Contains(rest, "maxMessageBytes") || !strings.HasSuffix(rest, strings.TrimSuffix(tc.frame(long), tc.end)) {
			t.Fatalf("%s: no replacement or the unfinished message is not whole at the end", name)
		}
		if d.n != 1 || len(d.ids) != 1 || d.ids[0] != "6" {
			t.Fatalf("%s: drops %+v", name, d)
		}
	}
}

func TestBodyLimiter_HoldsBackPastHoldAfterAndFailsWithoutPassingIt(t *testing.T) {
	const limit = 1 << 20
	for _, tc := range []struct {
		size int
		ok   bool
	}{{300 << 10, true}, {limit, true}, {limit + 1, false}, {3 << 20, false}} {
		// given a body of size bytes and a limit of 1 MiB
		body := bytes.Repeat([]byte("0123456789"), tc.size/10+1)[:tc.size]
		r := newBodyLimiter(iotest.HalfReader(bytes.NewReader(body)), limit, func(error, json.RawMessage) {})
		// when it is read whole
		got, err := io.ReadAll(r)
		// then within the limit it reads whole; over it, the read fails after at most
		// holdAfter bytes went through
		if tc.ok && (err != nil || !bytes.Equal(got, body)) {
			t.Fatalf("%d bytes: %d read, %v", tc.size, len(got), err)
		}
		if !tc.ok && (!errors.Is(err, ErrMessageTooLarge) || len(got) > holdAfter) {
			t.Fatalf("%d bytes: %d read before %v", tc.size, len(got), err)
		}
	}
}

func FuzzLimitEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: "+result("1", 40, false)+"\n\n: ping\n\ndata: "+result("2", 2, true)+"\r\n\r\n"), 60)
	f.Add([]byte("data: a\ndata: b\n\n\n\ndata"), 3)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			return
		}
		out, err := io.ReadAll(limitEvents(iotest.HalfReader(bytes.NewReader(in)), int64(limit), func(error, json.RawMessage) {}))
		if err != nil {
			t.Fatal(err)
		}
		// Input whose events are all within the limit passes unchanged.
		largest, n := 0, 0
		for _, l := range bytes.SplitAfter(in, []byte("\n")) {
			n += len(l)
			largest = max(largest, n)
			if string(l) == "\n" || string(l) == "\r\n" {
				n = 0
			}
		}
		if largest <= limit && !bytes.Equal(in, out) {
			t.Fatalf("changed: %q -> %q", in, out)
		}
	})
}

// BenchmarkLimiters measures what the limiters add to reading messages: MB/s of
// 100 responses of size bytes through each, against reading them directly.
func BenchmarkLimiters(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		lines := strings.Repeat(result("1", size, false)+"\n", 100)
		events := strings.Repeat("event: message\ndata: "+result("1", size, false)+"\n\n", 100)
		for _, tc := range []struct {
			name string
			in   string
			r    func(io.Reader) io.Reader
		}{
			{"direct", lines, func(r io.Reader) io.Reader { return r }},
			{"lines", lines, func(r io.Reader) io.Reader { return limitLines(r, 16<<20, func(error, json.RawMessage) {}) }},
			{"events", events, func(r io.Reader) io.Reader { return limitEvents(r, 16<<20, func(error, json.RawMessage) {}) }},
			{"body", lines, func(r io.Reader) io.Reader { return newBodyLimiter(r, 1<<30, func(error, json.RawMessage) {}) }},
		} {
			b.Run(tc.name+"/"+strconv.Itoa(size), func(b *testing.B) {
				b.SetBytes(int64(len(tc.in)))
				buf := make([]byte, 4096)
				for b.Loop() {
					r := tc.r(strings.NewReader(tc.in))
					for {
						if _, err := r.Read(buf); err != nil {
							break
						}
					}
				}
			})
		}
	}
}

func TestMsgScan_EscapesInSkippedStringsAtEverySplit(t *testing.T) {
	for in, want := range map[string]string{
		`{"result":{"text":"a\"b\\\"c\\","x":"\\"},"jsonrpc":"2.0","id":9}`: `9`,
		`{"result":"\"id\":1,\\","id":"k\"y"}`:                              `"k\"y"`,
		`{"params":"\\\\\"","method":"m","id":1}`:                           ``,
		`{"error":{"message":"\"}"},"id":-2}`:                               `-2`,
		`{"result":"line\nnext\u0022 \t","id":3}`:                           `3`,
	} {
		for cut := range len(in) + 1 {
			// given a message whose strings hold escaped quotes and backslashes, fed
			// in two pieces split anywhere
			var s msgScan
			s.feed([]byte(in[:cut]))
			s.feed([]byte(in[cut:]))
			// then the id is found as written
			if got := string(s.response()); got != want {
				t.Fatalf("%s split at %d: id %q, want %q", in, cut, got, want)
			}
		}
	}
}

func TestLimitBodies_DeclaredLengthOverTheLimitFailsUnread(t *testing.T) {
	// given a server that declares a body of 2 MiB and a limit of 1 MiB
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(2<<20))
		_, _ = w.Write(make([]byte, 2<<20))
	}))
	defer ts.Close()
	var d drops
	hc := &http.Client{Transport: limitBodies(http.DefaultTransport, 1<<20, d.f)}
	// when it is asked
	resp, err := hc.Get(ts.URL)
	if resp != nil {
		resp.Body.Close()
	}
	// then the request itself fails naming the limit: no reader gets the body
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 1<<20 || d.n != 1 {
		t.Fatalf("got %v, %v; want a *TooLargeError of 1 MiB", resp, err)
	}
}
