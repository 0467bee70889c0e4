package registry

import (
	"context"

	"github.com/mcpes/mcpes/domain"
)

// UpstreamInspector is the default InspectFunc: the upstream adapter's Inspect.
func UpstreamInspector(ctx context.Context, req InspectRequest) domain.InspectionOutcome {
	return domain.InspectionOutcome{Class: domain.FailureUnsupported, Message: "no upstream adapter yet"}
}
