package connections

import (
	"context"
	"net/http"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/upstream"
)

// UpstreamDial returns a DialFunc that dials with upstream.Dial, using tmpl (secrets
// resolver, environment, SSRF guard, logger, ...) with its Scope set to the scope the
// effective config came from: app configs are trusted, user configs go through the
// guard. It is the default Dial with the zero upstream.Options.
func UpstreamDial(tmpl upstream.Options) DialFunc { return upstreamDial(tmpl, nil) }

// upstreamDial is UpstreamDial whose requests for an OAuth server carry the owner's
// access token from grants.
func upstreamDial(tmpl upstream.Options, grants GrantSource) DialFunc {
	return func(ctx context.Context, req DialRequest) (Session, error) {
		o := tmpl
		o.Scope = req.Scope
		if req.OAuth && grants != nil {
			owner, name := req.Owner, req.Name
			o.WrapHTTP = func(base http.RoundTripper) http.RoundTripper { return grants.Transport(owner, name, base) }
		}
		c, err := upstream.Dial(ctx, req.Name, req.Config, o)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

func defaultDial(o Options) DialFunc { return upstreamDial(o.Upstream, o.Grants) }

func defaultClassify(err error) domain.FailureClass { return upstream.Classify(err) }

// Upstream returns the connection's *upstream.Conn (for tool calls), or nil when the
// session came from another DialFunc.
func (c *Connection) Upstream() *upstream.Conn {
	u, _ := c.sess.(*upstream.Conn)
	return u
}
