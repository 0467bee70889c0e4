package relay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
	"github.com/mcpes/mcpes/relay"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/store/memory"
)

// An in-process alerting hook on failed inspections: subscribe first (GoChannel is
// live only), then run the relay over the store.
func ExampleInProcess_OnInspectionFailed() {
	st := memory.New()
	defer st.Close()
	ip := relay.NewInProcess(nil)
	defer ip.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	alerted := make(chan struct{})
	_, err := ip.OnInspectionFailed(ctx, func(_ events.Envelope, f domain.ServerInspectionFailed) {
		fmt.Printf("ALERT %s %s: %s (%s)\n", f.Scope, f.Name, f.Message, f.Class)
		close(alerted)
	})
	if err != nil {
		panic(err)
	}
	r, _ := relay.New(relay.Config{Store: st, Publisher: ip.Publisher(), Name: "relay:inprocess"})
	go func() { _ = r.Run(ctx) }()

	for _, fact := range []any{
		domain.ServerRegistered{Scope: domain.AppScope, Name: "files"},
		domain.ServerInspectionFailed{Scope: domain.AppScope, Name: "files", Class: domain.FailureTimeout,
			Message: "initialize timed out"},
	} {
		e, _ := events.New(fact, events.Meta{ID: newID(), Source: "mcpes://example", Time: time.Now(), Actor: "system"})
		_, _ = st.Append(ctx, e.Subject, store.AnyVersion, e)
	}
	<-alerted
	// Output: ALERT app files: initialize timed out (timeout)
}
