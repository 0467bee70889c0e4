package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzPerServerPost: whatever a client of a session posts to /mcp/{server} (one
// message, a batch, garbage), the gateway answers with a client error or an
// answer, never a server error, and keeps serving the session.
func FuzzPerServerPost(f *testing.F) {
	for _, s := range []string{
		listBody,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`,
		`{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"mcpes-s1","result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"not an object"}`,
		`{"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"nope"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"initialize"}`,
		`{`, `[]`, `null`, ``,
	} {
		f.Add(s)
	}
	_, u := clockEnv(f)
	sid := ""
	f.Fuzz(func(t *testing.T, body string) {
		if sid == "" {
			sid = initSession(t, u, "2025-11-25")
		}
		res, answer := send(t, http.MethodPost, u, sid, body, nil)
		if res.StatusCode >= 500 {
			t.Fatalf("HTTP %d for %q: %s", res.StatusCode, body, answer)
		}
		if res2, answer := send(t, http.MethodPost, u, sid, listBody, nil); res2.StatusCode != http.StatusOK ||
			!strings.Contains(answer, `"echo"`) {
			t.Fatalf("after %q the session answers HTTP %d %s", body, res2.StatusCode, answer)
		}
	})
}
