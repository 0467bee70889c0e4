package gateway_test

import (
	"strings"
	"testing"

	"github.com/mcpes/mcpes/handlers/gateway"
)

// FuzzNames checks the prefixed-name parsers: whatever splits joins back to the
// same string, and a split never yields a server name containing the separator or a
// slash.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"clock__echo", "a__b__c", "__x", "x__", "", "mcpes://clock/clock://zones",
		"mcpes://", "mcpes:///x", "mcpes://s/", "mcpes://s/a/b?c=d", "everything__get-env"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if s, n, ok := gateway.SplitName(in); ok {
			if gateway.ToolName(s, n) != in || strings.Contains(s, gateway.Separator) || s == "" || n == "" {
				t.Fatalf("SplitName(%q) = %q, %q", in, s, n)
			}
		}
		if s, u, ok := gateway.SplitResourceURI(in); ok {
			if gateway.ResourceURI(s, u) != in || strings.Contains(s, "/") || s == "" || u == "" {
				t.Fatalf("SplitResourceURI(%q) = %q, %q", in, s, u)
			}
		}
	})
}
