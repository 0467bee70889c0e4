package domain

import "testing"

func TestMayCollide_OnlyNamesThatCanShareAPrefix(t *testing.T) {
	mapped := ToolPrefix("google calendar")
	for name, want := range map[string]bool{
		"clock": false, "my-server.v2": false, "a_b": false, // plain: their own prefix, unlike any mapped one
		"google calendar": true, "日本語": true, "a__b": true, // mapped
		mapped: true, "x-0123abcd": true, // plain, but spelled like a mapped prefix
		"x-0123ABCD": false, "x0123abcd": false,
	} {
		if got := MayCollide(name); got != want {
			t.Errorf("MayCollide(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzMayCollide: a name MayCollide clears never shares a prefix with another name.
func FuzzMayCollide(f *testing.F) {
	for _, s := range [][2]string{{"clock", "google calendar"}, {"x-0123abcd", "x y"}, {"a", "a "}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a != b && !MayCollide(a) && ToolPrefix(a) == ToolPrefix(b) {
			t.Fatalf("%q cleared but shares prefix %q with %q", a, ToolPrefix(a), b)
		}
	})
}
