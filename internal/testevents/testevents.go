// Package testevents writes domain facts to a store for tests, as the service would
// record them.
package testevents

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/store"
)

// Append appends one event carrying fact, recorded by actor, to the fact's own
// stream at any version: a fresh UUIDv7 id, source mcpes://test, time now. Returns
// its log position. It fails tb when fact is not a catalogued fact or the append
// fails.
func Append(tb testing.TB, st store.Store, actor string, fact any) uint64 {
	tb.Helper()
	env, err := events.New(fact, events.Meta{ID: uuid.Must(uuid.NewV7()).String(), Source: "mcpes://test",
		Time: time.Now(), Actor: actor})
	if err != nil {
		tb.Fatalf("new %T: %v", fact, err)
	}
	res, err := st.Append(context.Background(), env.Subject, store.AnyVersion, env)
	if err != nil {
		tb.Fatalf("append %T: %v", fact, err)
	}
	return res.Positions[0]
}
