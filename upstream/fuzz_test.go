package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckURL: CheckURL never panics, and whatever it accepts without an allowed
// domain has a public literal address or a name that is not a blocked one.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1/", "https://[::ffff:10.0.0.1]:8443/mcp", "http://[64:ff9b::a00:1]/", "ws://localhost./",
		"http://a.internal", "https://93.184.216.34/", "http://[fe80::1%25eth0]/", "http://0x7f.1/", "http://2130706433/",
		"file:///etc/passwd", "http://user:pw@10.0.0.1/", "http://[2002:a00:1::]/", "://", "http://%zz/",
	} {
		f.Add(s)
	}
	g := &Guard{Resolver: &fakeResolver{table: map[string][]string{}}}
	f.Fuzz(func(t *testing.T, raw string) {
		err := g.CheckURL(context.Background(), raw)
		if err != nil {
			return
		}
		// accepted: it must have been a literal public address
		host := hostOf(raw)
		a, perr := netip.ParseAddr(strings.Trim(host, "[]"))
		if perr != nil {
			t.Fatalf("accepted %q with non-literal host %q although nothing resolves", raw, host)
		}
		if blockedAddrReason(a) != "" {
			t.Fatalf("accepted blocked address %s in %q", a, raw)
		}
	})
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// FuzzReadSSE: the event-stream reader never panics and hands out every data line.
func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
		"data: a\ndata: b\n\n: comment\n\ndata:c",
		"\r\n\r\nid: 1\r\ndata: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n int
		err := readSSE(bytes.NewReader(b), func(ev sseEvent) bool {
			if ev.HasData {
				n += strings.Count(ev.Data, "\n") + 1
			}
			return true
		})
		if err != nil {
			return
		}
		if want := countDataLines(b); n != want {
			t.Fatalf("saw %d data lines, want %d", n, want)
		}
	})
}

func countDataLines(b []byte) int {
	n := 0
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n") {
		if line == "data" || strings.HasPrefix(line, "data:") {
			n++
		}
	}
	return n
}

// FuzzLineChecker: the stdout checker passes every byte through unchanged and
// reports garbage only for a complete line that is not JSON-RPC.
func FuzzLineChecker(f *testing.F) {
	for _, s := range []string{
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n", "hello\n", "{\"jsonrpc\":\"2.0\"}\n\n  \n{\"jsonrpc\":\"1.0\"}\n", "[1,2]\n", "partial",
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, b []byte, chunk int) {
		if chunk <= 0 || chunk > 64 {
			chunk = 7
		}
		var got error
		lc := &lineChecker{r: &chunkReader{b: b, n: chunk}, onBad: func(err error) {
			if got != nil {
				t.Fatal("onBad called twice")
			}
			got = err
		}}
		var out bytes.Buffer
		if _, err := out.ReadFrom(lc); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), b) {
			t.Fatal("bytes changed")
		}
		var want error
		lines := bytes.Split(b, []byte("\n"))
		for _, l := range lines[:len(lines)-1] { // the last part has no newline yet
			if err := checkJSONRPCLine(l); err != nil {
				want = err
				break
			}
		}
		if (got == nil) != (want == nil) || got != nil && !errors.Is(got, ErrProtocol) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}
