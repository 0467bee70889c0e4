package domain

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

var at0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

var httpCfg = ServerConfig{Type: "streamable-http", URL: "https://files.example.com/mcp"}

// given folds facts at positions 1, 2, ... into a state.
func given(facts ...any) ServerState {
	var s ServerState
	for i, f := range facts {
		s = s.Apply(f, uint64(i+1), at0.Add(time.Duration(i)*time.Second))
	}
	return s
}

func wantServerErr(tb testing.TB, err, sentinel error, name string) {
	tb.Helper()
	var se *ServerError
	if !errors.Is(err, sentinel) || !errors.As(err, &se) || se.Name != name {
		tb.Fatalf("err = %v, want %v for %s", err, sentinel, name)
	}
}

func TestDecideRegisterServer(t *testing.T) {
	t.Run("new server is registered", func(t *testing.T) {
		got, err := DecideRegisterServer(given(), RegisterServer{Scope: AppScope, Name: "files", Config: httpCfg})
		if err != nil || !reflect.DeepEqual(got, []any{ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}}) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("existing name is refused", func(t *testing.T) {
		_, err := DecideRegisterServer(given(ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}),
			RegisterServer{Scope: AppScope, Name: "files", Config: httpCfg})
		wantServerErr(t, err, ErrServerExists, "files")
	})
	t.Run("removed name may be registered again", func(t *testing.T) {
		st := given(ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}, ServerRemoved{Scope: AppScope, Name: "files"})
		if got, err := DecideRegisterServer(st, RegisterServer{Scope: AppScope, Name: "files", Config: httpCfg}); err != nil || len(got) != 1 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("invalid config is refused with problems", func(t *testing.T) {
		_, err := DecideRegisterServer(given(), RegisterServer{Scope: UserScope("alice"), Name: "sh", Config: ServerConfig{Command: "sh"}})
		if !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDecideChangeServerConfig(t *testing.T) {
	reg := ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}
	t.Run("changed config names the changed fields", func(t *testing.T) {
		next := httpCfg.Clone()
		next.URL, next.TimeoutMS = "https://other.example.com/mcp", 5000
		got, err := DecideChangeServerConfig(given(reg), ChangeServerConfig{Scope: AppScope, Name: "files", Config: next})
		want := []any{ServerConfigChanged{Scope: AppScope, Name: "files", Config: next, Changed: []string{"timeout", "url"}}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("equal config is a no-op", func(t *testing.T) {
		got, err := DecideChangeServerConfig(given(reg), ChangeServerConfig{Scope: AppScope, Name: "files", Config: httpCfg.Clone()})
		if err != nil || got != nil {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("absent server is not found", func(t *testing.T) {
		_, err := DecideChangeServerConfig(given(), ChangeServerConfig{Scope: AppScope, Name: "files", Config: httpCfg})
		wantServerErr(t, err, ErrServerNotFound, "files")
	})
	t.Run("put registers then changes", func(t *testing.T) {
		got, err := DecidePutServer(given(), AppScope, "files", httpCfg, "")
		if err != nil || len(got) != 1 {
			t.Fatalf("register: %+v %v", got, err)
		}
		if _, ok := got[0].(ServerRegistered); !ok {
			t.Fatalf("want ServerRegistered, got %T", got[0])
		}
		got, err = DecidePutServer(given(reg), AppScope, "files", ServerConfig{Command: "x"}, "")
		if _, ok := got[0].(ServerConfigChanged); err != nil || !ok {
			t.Fatalf("change: %+v %v", got, err)
		}
	})
}

func TestDecideRemoveServer(t *testing.T) {
	got, err := DecideRemoveServer(given(ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}), RemoveServer{Scope: AppScope, Name: "files"})
	if err != nil || !reflect.DeepEqual(got, []any{ServerRemoved{Scope: AppScope, Name: "files"}}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	_, err = DecideRemoveServer(given(), RemoveServer{Scope: AppScope, Name: "files"})
	wantServerErr(t, err, ErrServerNotFound, "files")
}

func TestDecideRecordInspection(t *testing.T) {
	reg := ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}
	tools := []Tool{{Name: "write"}, {Name: "read", Description: "reads"}}
	ok := InspectionOutcome{OK: true, ServerName: "fs", Tools: tools, Duration: 1500 * time.Millisecond}
	cmd := func(v uint64, o InspectionOutcome) RecordInspection {
		return RecordInspection{Scope: AppScope, Name: "files", InspectedVersion: v, Outcome: o}
	}

	t.Run("success records the sorted catalogue and its digest", func(t *testing.T) {
		got, err := DecideRecordInspection(given(reg), cmd(1, ok))
		if err != nil || len(got) != 1 {
			t.Fatalf("got %+v, %v", got, err)
		}
		ins := got[0].(ServerInspected)
		if ins.Tools[0].Name != "read" || ins.Digest != CatalogueDigest(tools) || ins.ConfigVersion != 1 || ins.Recovered || ins.DurationMS != 1500 {
			t.Fatalf("inspected: %+v", ins)
		}
	})
	t.Run("failure makes a stub", func(t *testing.T) {
		got, _ := DecideRecordInspection(given(reg), cmd(1, InspectionOutcome{Class: FailureUnreachable, Message: "refused"}))
		f := got[0].(ServerInspectionFailed)
		st := given(reg, f)
		if f.Class != FailureUnreachable || !st.InspectionFailed || !st.View().InspectionFailed {
			t.Fatalf("failed: %+v, state %+v", f, st)
		}
	})
	t.Run("401 marks requiresOAuth, not failed", func(t *testing.T) {
		got, _ := DecideRecordInspection(given(reg), cmd(1, InspectionOutcome{Class: FailureAuth, RequiresOAuth: true}))
		st := given(reg, got[0])
		if st.InspectionFailed || !st.RequiresOAuth() || !st.View().RequiresOAuth {
			t.Fatalf("state %+v", st)
		}
	})
	t.Run("recovery moves the version on", func(t *testing.T) {
		failed := ServerInspectionFailed{Scope: AppScope, Name: "files", ConfigVersion: 1, Class: FailureTimeout}
		st := given(reg, failed)
		got, _ := DecideRecordInspection(st, cmd(1, ok))
		ins := got[0].(ServerInspected)
		after := given(reg, failed, ins)
		if !ins.Recovered || after.Version != 3 || after.InspectionFailed || !after.UpdatedAt.Equal(at0.Add(2*time.Second)) {
			t.Fatalf("inspected %+v, state %+v", ins, after)
		}
	})
	t.Run("tool drift is recorded", func(t *testing.T) {
		first, _ := DecideRecordInspection(given(reg), cmd(1, ok))
		st := given(reg, first[0])
		drifted := ok
		drifted.Tools = []Tool{{Name: "read", Description: "reads files"}, {Name: "search"}}
		got, _ := DecideRecordInspection(st, cmd(1, drifted))
		if len(got) != 2 {
			t.Fatalf("got %+v", got)
		}
		d := got[1].(ServerToolsChanged)
		if !reflect.DeepEqual(d.Added, []string{"search"}) || !reflect.DeepEqual(d.Removed, []string{"write"}) ||
			!reflect.DeepEqual(d.Changed, []string{"read"}) || d.PrevDigest == d.Digest {
			t.Fatalf("drift %+v", d)
		}
		// and the same catalogue again records no drift
		same, _ := DecideRecordInspection(st, cmd(1, ok))
		if len(same) != 1 {
			t.Fatalf("no drift expected: %+v", same)
		}
	})
	t.Run("the upgrade that adds raw entries is not drift", func(t *testing.T) {
		// given a catalogue recorded before tools carried their entries
		first, _ := DecideRecordInspection(given(reg), cmd(1, ok))
		st := given(reg, first[0])
		// when the same tools are inspected again, now with their raw entries
		withEntries := ok
		withEntries.Tools = nil
		for _, tl := range ok.Tools {
			tl.Entry = RawJSON(`{"name":"` + tl.Name + `","annotations":{"readOnlyHint":true}}`)
			withEntries.Tools = append(withEntries.Tools, tl)
		}
		got, _ := DecideRecordInspection(st, cmd(1, withEntries))
		// then no tools_changed is recorded
		if len(got) != 1 {
			t.Fatalf("upgrade recorded as drift: %+v", got)
		}
		// and a later change of an entry alone is drift
		st = given(reg, first[0], got[0])
		changed := withEntries
		changed.Tools = slices.Clone(withEntries.Tools)
		changed.Tools[0].Entry = RawJSON(`{"name":"` + changed.Tools[0].Name + `"}`)
		again, _ := DecideRecordInspection(st, cmd(1, changed))
		if len(again) != 2 || !reflect.DeepEqual(again[1].(ServerToolsChanged).Changed, []string{changed.Tools[0].Name}) {
			t.Fatalf("entry change not drift: %+v", again)
		}
		// and a real change on the upgrade is still drift
		drifted := withEntries
		drifted.Tools = slices.Clone(withEntries.Tools)
		drifted.Tools[0].Description = "something else"
		moved, _ := DecideRecordInspection(given(reg, first[0]), cmd(1, drifted))
		if len(moved) != 2 {
			t.Fatalf("real change on upgrade lost: %+v", moved)
		}
	})
	t.Run("inspection of a stale version is dropped", func(t *testing.T) {
		st := given(reg, ServerConfigChanged{Scope: AppScope, Name: "files", Config: ServerConfig{Command: "x"}, Changed: []string{"command"}})
		got, err := DecideRecordInspection(st, cmd(1, ok))
		if err != nil || got != nil {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("absent server is not found", func(t *testing.T) {
		_, err := DecideRecordInspection(given(), cmd(1, ok))
		wantServerErr(t, err, ErrServerNotFound, "files")
	})
}

func TestDecideRequestReinspection(t *testing.T) {
	reg := ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg}
	req := RequestReinspection{Scope: AppScope, Name: "files"}
	_, err := DecideRequestReinspection(given(), req)
	wantServerErr(t, err, ErrServerNotFound, "files")
	if err.Error() != "server files not found" {
		t.Fatalf("message %q", err)
	}
	_, err = DecideRequestReinspection(given(reg), req)
	wantServerErr(t, err, ErrNotFailed, "files")
	if err.Error() != "server files is not in a failed state" {
		t.Fatalf("message %q", err)
	}
	got, err := DecideRequestReinspection(given(reg, ServerInspectionFailed{Scope: AppScope, Name: "files", ConfigVersion: 1}), req)
	if err != nil || !reflect.DeepEqual(got, []any{ServerReinspectionRequested{Scope: AppScope, Name: "files"}}) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestServerState_Apply(t *testing.T) {
	// given a registration, a change, an inspection failure, a reinspection request
	st := given(
		ServerRegistered{Scope: AppScope, Name: "files", Config: httpCfg},
		ServerConfigChanged{Scope: AppScope, Name: "files", Config: ServerConfig{Command: "x"}},
		ServerInspectionFailed{Scope: AppScope, Name: "files", ConfigVersion: 2, Class: FailureProtocol, Message: "garbage"},
		ServerReinspectionRequested{Scope: AppScope, Name: "files"},
	)
	// then the version is the change's position and every event counts in the stream
	if !st.Exists || st.Version != 2 || st.StreamVersion != 4 || !st.InspectionFailed || st.FailureMessage != "garbage" || st.Config.Command != "x" {
		t.Fatalf("state %+v", st)
	}
	// and a config change clears the failure
	st = st.Apply(ServerConfigChanged{Scope: AppScope, Name: "files", Config: httpCfg}, 9, at0)
	if st.InspectionFailed || st.Inspected || st.Version != 9 {
		t.Fatalf("after change %+v", st)
	}
	// and removal keeps only the stream version
	st = st.Apply(ServerRemoved{Scope: AppScope, Name: "files"}, 10, at0)
	if st.Exists || st.StreamVersion != 6 || st.View().Found {
		t.Fatalf("after remove %+v", st)
	}
}
