package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// millisFields are the server fields LibreChat reads as whole numbers of
// milliseconds.
var millisFields = []string{"timeout", "initTimeout", "sseReadTimeout", "oauthRefreshWaitTimeout", "oauthPersistenceWaitTimeout"}

// positiveFields must be above zero when present (zero reads as "not set" once
// decoded, so the loader checks it here).
var positiveFields = []string{"sseReadTimeout", "oauthRefreshWaitTimeout", "oauthPersistenceWaitTimeout"}

// libreChatShape applies the rules of LibreChat's schema that depend on a key being
// present rather than on its value, and reads YAML 1.2 number spellings the YAML
// library leaves as strings. It reports problems (the entry is still decoded, so
// every problem is listed). fields is changed in place.
func (d *decoder) libreChatShape(name string, fields map[string]any, path []string) {
	fail := func(field, format string, args ...any) {
		d.problem(Problem{Server: name, Field: field, Reason: fmt.Sprintf(format, args...)}, append(slices.Clone(path), fieldPath(field)...))
	}
	// A number written 1e4 or 1.0e+4 is a float in YAML 1.2 (and to js-yaml, which
	// LibreChat uses); the YAML library here returns it as a string. Only unquoted
	// scalars are numbers: "30000" in quotes stays a string (and is refused).
	for _, f := range millisFields {
		s, isStr := fields[f].(string)
		if !isStr || d.quoted(append(slices.Clone(path), f)) {
			continue
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			fields[f] = n
		}
	}
	for _, f := range positiveFields {
		if n, isNum := fields[f].(float64); isNum && n == 0 {
			fail(f, "must be a positive number of milliseconds, got 0")
		}
		if n, isNum := fields[f].(uint64); isNum && n == 0 {
			fail(f, "must be a positive number of milliseconds, got 0")
		}
	}
	typ, _ := fields["type"].(string)
	_, hasCommand := fields["command"]
	if _, hasArgs := fields["args"]; !hasArgs && (typ == "stdio" || typ == "" && hasCommand) {
		fail("args", "stdio needs args (LibreChat requires the list; write args: [] for none)")
	}
	if vars, isMap := fields["customUserVars"].(map[string]any); isMap {
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			entry, isMap := vars[k].(map[string]any)
			if !isMap {
				continue // the JSON decoding names the type
			}
			for _, want := range []string{"title", "description"} {
				if _, has := entry[want]; !has {
					fail("customUserVars."+k+"."+want, "required (LibreChat refuses a customUserVars entry without it)")
				}
			}
		}
	}
}

// quoted reports whether the scalar at path was written in quotes.
func (d *decoder) quoted(path []string) bool {
	n := d.root
	for _, key := range path {
		if n = child(n, key); n == nil {
			return false
		}
	}
	if l, ok := n.(*located); ok {
		n = l.Node
	}
	if _, isStr := n.(*ast.StringNode); !isStr {
		return false
	}
	tk := n.GetToken()
	return tk != nil && (tk.Type == token.SingleQuoteType || tk.Type == token.DoubleQuoteType)
}
