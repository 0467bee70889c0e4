package registry

import (
	"context"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/upstream"
)

// UpstreamInspector is the default InspectFunc: upstream.Inspect with the request's
// secret resolver, environment (app scope) and SSRF guard (user scope). A guard that
// is not an *upstream.Guard is replaced by upstream's default guard, which blocks
// every non-public address.
func UpstreamInspector(ctx context.Context, req InspectRequest) domain.InspectionOutcome {
	opts := upstream.Options{Scope: req.Scope, Secrets: req.Secret, Env: req.LookupEnv,
		MaxMessageBytes: req.MaxMessageBytes, WrapHTTP: req.WrapHTTP}
	if g, ok := req.Guard.(*upstream.Guard); ok {
		opts.Guard = g
	}
	return upstream.Inspect(ctx, req.Name, req.Config, opts)
}
