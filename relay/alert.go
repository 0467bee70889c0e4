package relay

import (
	"context"
	"fmt"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/events"
)

// InspectionFailedFilter selects server.inspection_failed events of every version.
var InspectionFailedFilter = Filter{Types: []string{"server.inspection_failed"}}

// OnInspectionFailed is an example alerting hook: it calls alert for every
// server.inspection_failed event published to p from now on (live, see Subscribe),
// with the decoded fact, until ctx ends; then it returns nil. An event that does not
// decode is skipped. Returns the subscription error. alert runs on the subscriber's
// goroutine, so a slow alert slows the relay: hand long work to a goroutine.
func (p *InProcess) OnInspectionFailed(ctx context.Context, alert func(events.Envelope, domain.ServerInspectionFailed)) error {
	ch, err := p.Subscribe(ctx, InspectionFailedFilter)
	if err != nil {
		return fmt.Errorf("inspection failure hook: %w", err)
	}
	for e := range ch {
		fact, err := events.Decode(e)
		if err != nil {
			continue
		}
		if f, ok := fact.(domain.ServerInspectionFailed); ok {
			alert(e, f)
		}
	}
	return nil
}
