package upstream

import (
	"encoding/json"
	"testing"
)

// FuzzSwapProgressToken: swapping a request's progress token and putting the
// client's back into a notification round-trips it, and never panics.
func FuzzSwapProgressToken(f *testing.F) {
	for _, s := range []string{`{"name":"t","_meta":{"progressToken":7}}`, `{"_meta":{"progressToken":"a"}}`,
		`{"_meta":{}}`, `{"progressToken":1}`, `[]`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		out, old := swapProgressToken(params, json.RawMessage(`"mcpes-r1"`))
		if old == nil {
			return
		}
		var m struct {
			Meta struct {
				Token json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(out, &m); err != nil || string(m.Meta.Token) != `"mcpes-r1"` {
			t.Fatalf("swapped %q: token %s, %v", out, m.Meta.Token, err)
		}
		back, ok := swapToken(json.RawMessage(`{"progressToken":"mcpes-r1","progress":1}`), old)
		var n struct {
			Token json.RawMessage `json:"progressToken"`
		}
		if !ok || json.Unmarshal(back, &n) != nil || !jsonSame(n.Token, old) {
			t.Fatalf("token %s came back as %s", old, n.Token)
		}
	})
}

func jsonSame(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}
