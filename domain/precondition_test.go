package domain

import (
	"errors"
	"strings"
	"testing"
)

func TestPrecondition_Check(t *testing.T) {
	absent := ServerState{}
	v3 := ServerState{Name: "files", Exists: true, ConfigVersion: 3}
	cases := []struct {
		name string
		p    Precondition
		st   ServerState
		ok   bool
	}{
		{"no precondition holds for anything", Precondition{}, v3, true},
		{"absent holds for a new name", Precondition{Absent: true}, absent, true},
		{"absent fails for an existing server", Precondition{Absent: true}, v3, false},
		{"a version holds when it is the current one", Precondition{ConfigVersion: 3}, v3, true},
		{"a version fails when the config moved on", Precondition{ConfigVersion: 2}, v3, false},
		{"a version fails for a server that is gone", Precondition{ConfigVersion: 3}, absent, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// given a precondition and a state, when it is checked
			err := c.p.Check("files", c.st)
			// then it holds, or fails naming the server with ErrPreconditionFailed
			if c.ok != (err == nil) {
				t.Fatalf("Check = %v, want ok %v", err, c.ok)
			}
			if !c.ok && (!errors.Is(err, ErrPreconditionFailed) || !strings.Contains(err.Error(), "files")) {
				t.Fatalf("error %v", err)
			}
		})
	}
}
