package relay

import (
	"context"
	"fmt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// InspectionFailedFilter selects server.inspection_failed events of every version.
var InspectionFailedFilter = Filter{Types: []string{"server.inspection_failed"}}

// OnInspectionFailed is an example alerting hook: it subscribes (the subscription
// exists when it returns) and then, in the background, calls alert for every
// server.inspection_failed event published to p, with the decoded fact, until ctx
// ends; done is closed then. An event that does not decode is skipped. Returns the
// subscription error. alert runs on the subscriber's goroutine, so a slow alert slows
// the relay: hand long work to a goroutine.
func (p *InProcess) OnInspectionFailed(ctx context.Context, alert func(events.Envelope, domain.ServerInspectionFailed)) (done <-chan struct{}, err error) {
	ch, err := p.Subscribe(ctx, InspectionFailedFilter)
	if err != nil {
		return nil, fmt.Errorf("inspection failure hook: %w", err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for e := range ch {
			fact, err := events.Decode(e)
			if err != nil {
				continue
			}
			if f, ok := fact.(domain.ServerInspectionFailed); ok {
				alert(e, f)
			}
		}
	}()
	return stopped, nil
}
