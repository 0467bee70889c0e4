package domain

import "testing"

func TestNodeLocal_OnlyConnectionStreams(t *testing.T) {
	// Given the stream of every kind of aggregate
	cases := map[string]bool{
		ConnStream("alice", "files"):            true,
		ConnStream("", "files"):                 true,
		ServerStream(AppScope, "files"):         false,
		OwnerInspectionStream("alice", "files"): false,
		UserVarsStream("alice", "files"):        false,
		OwnerProfileStream("alice"):             false,
	}
	for stream, want := range cases {
		// When it is asked whether the stream stays on its node
		// Then only connection decisions do
		if got := NodeLocal(stream); got != want {
			t.Errorf("NodeLocal(%q) = %v, want %v", stream, got, want)
		}
	}
}
