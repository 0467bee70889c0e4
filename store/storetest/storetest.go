// Package storetest is the conformance suite every store.Store implementation must
// pass, in the style of Watermill's universal pub/sub tests: an implementation's test
// calls Run with a constructor and the features it guarantees.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() }, storetest.Features{})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Features says what an implementation guarantees beyond the common contract.
type Features struct {
	// Durable means that committed data survives Close; Reopen must then be set.
	Durable bool
	// Reopen closes s and opens the same data again. Tests of durability (events,
	// idempotency, checkpoints, snapshots, secrets across a restart) run only when set.
	Reopen func(t *testing.T, s store.Store) store.Store
	// Appenders is the number of concurrent appenders in the concurrency tests
	// (default 8).
	Appenders int
	// PerAppender is the number of appends each of them makes (default 25).
	PerAppender int
}

// Opener returns a new, empty store. It should arrange its Close with t.Cleanup;
// the suite also closes stores itself, so a second Close must be harmless.
type Opener func(t *testing.T) store.Store

// TestType is the event type of the events built by Event.
const TestType = "mcpes.test.appended.v1"

// Event returns a valid, unsealed envelope for stream with a fresh UUIDv7 id and a
// small JSON payload carrying n.
func Event(tb testing.TB, stream string, n int) events.Envelope {
	tb.Helper()
	e, err := NewEvent(stream, n)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// NewEvent is Event for code without a testing.TB (benchmark children, tools).
func NewEvent(stream string, n int) (events.Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return events.Envelope{}, fmt.Errorf("uuid: %w", err)
	}
	data, _ := json.Marshal(map[string]any{"n": n, "note": "conformance"})
	return events.Envelope{
		SpecVersion: events.SpecVersion, ID: id.String(), Source: "mcpes://storetest",
		Type: TestType, Subject: stream, Time: time.Now().UTC(), DataContentType: "application/json",
		Actor: "system", Reason: fmt.Sprintf("event %d", n), Data: data,
	}, nil
}

// Events returns n events for stream, numbered from 1.
func Events(tb testing.TB, stream string, n int) []events.Envelope {
	tb.Helper()
	out := make([]events.Envelope, n)
	for i := range out {
		out[i] = Event(tb, stream, i+1)
	}
	return out
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, open Opener, f Features) {
	if f.Appenders <= 0 {
		f.Appenders = 8
	}
	if f.PerAppender <= 0 {
		f.PerAppender = 25
	}
	if f.Durable && f.Reopen == nil {
		t.Fatal("storetest: Features.Durable needs Reopen")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener, f Features)
	}{
		{"AppendAndReadStream", testAppendAndReadStream},
		{"SealedFields", testSealedFields},
		{"ReadAllPages", testReadAllPages},
		{"ReadRecordsStops", testReadRecordsStops},
		{"ExpectedVersionConflict", testExpectedVersionConflict},
		{"NoStreamAndAnyVersion", testNoStreamAndAnyVersion},
		{"InvalidAppend", testInvalidAppend},
		{"DuplicateIDs", testDuplicateIDs},
		{"ConcurrentAppendsGapFree", testConcurrentAppendsGapFree},
		{"ConcurrentConflicts", testConcurrentConflicts},
		{"ObserversInOrder", testObserversInOrder},
		{"ObserverStops", testObserverStops},
		{"BlockedObserverDoesNotStallAppends", testBlockedObserverDoesNotStallAppends},
		{"ConflictReturnsAfterObserversSawTheWinner", testConflictReturnsAfterObserversSawTheWinner},
		{"CommitOrderIsPositionOrder", testCommitOrder},
		{"WaitWakesOnCommit", testWaitWakes},
		{"WaitHonoursContext", testWaitContext},
		{"PositionAt", testPositionAt},
		{"Checkpoints", testCheckpoints},
		{"Snapshots", testSnapshots},
		{"SnapshotSeries", testSnapshotSeries},
		{"Streams", testStreams},
		{"Secrets", testSecrets},
		{"ClosedStore", testClosed},
		{"HashChainVerifies", testHashChain},
		{"Reopen", testReopen},
		{"MerkleTree", testMerkleTree},
		{"InclusionProofs", testInclusionProofs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open, f)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, s store.Store, stream string, expected int64, evs ...events.Envelope) store.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), stream, expected, evs...)
	if err != nil {
		t.Fatalf("append %d events to %s (expected %d): %v", len(evs), stream, expected, err)
	}
	if len(res.Positions) != len(evs) {
		t.Fatalf("append: %d positions for %d events", len(res.Positions), len(evs))
	}
	return res
}

func readAll(t *testing.T, s store.Store) []events.Envelope {
	t.Helper()
	all, err := s.ReadAll(ctxT(t), 1, 0)
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	return all
}

func head(t *testing.T, s store.Store) uint64 {
	t.Helper()
	h, _, err := s.Head(ctxT(t))
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	return h
}

func ids(evs []events.Envelope) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// verifyOK fails t unless store.Verify passes with n events.
func verifyOK(t *testing.T, s store.Store, n int) {
	t.Helper()
	rep, err := store.Verify(ctxT(t), s)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK || rep.Events != n {
		t.Fatalf("verify: ok=%v events=%d (want %d) problems=%v", rep.OK, rep.Events, n, rep.Problems)
	}
}
