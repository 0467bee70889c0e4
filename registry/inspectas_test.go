package registry_test

import (
	"net/http"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/oauth/oauthtest"
	"github.com/mcpes/mcpes/registry"
)

// bearer adds a fixed Authorization header, standing in for an owner's OAuth transport.
type bearer struct {
	base http.RoundTripper
	tok  string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.base.RoundTrip(r)
}

func TestService_InspectAs_CatalogueWithAnOwnersGrantKeepsOAuth(t *testing.T) {
	// given a server that answers nobody without a token, registered and marked as needing OAuth
	as := oauthtest.Start(t)
	h := newHarness(t, nil, registry.Options{})
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "gh", httpConfig(as.URL+"/mcp")); err != nil {
		t.Fatal(err)
	}
	if st := h.state(domain.AppScope, "gh"); !st.RequiresOAuth() || st.LastSuccess != nil {
		t.Fatalf("before: %+v", st)
	}
	// when it is inspected with a wrong token, then nothing is recorded
	wrap := func(tok string) func(http.RoundTripper) http.RoundTripper {
		return func(b http.RoundTripper) http.RoundTripper { return bearer{b, tok} }
	}
	head := h.head(t)
	if out, err := h.Svc.InspectAs(ctx(t), domain.AppScope, "gh", "alice", wrap("wrong")); err != nil || out.OK {
		t.Fatalf("wrong token: %+v %v", out, err)
	}
	if h.head(t) != head {
		t.Fatal("a failed inspection with one owner's token was recorded")
	}
	// when it is inspected with alice's valid token
	tok := as.IssueForTest()
	if out, err := h.Svc.InspectAs(ctx(t), domain.AppScope, "gh", "alice", wrap(tok)); err != nil || !out.OK {
		t.Fatalf("alice's token: %+v %v", out, err)
	}
	// then its catalogue is recorded, made as alice, and it still requires OAuth
	st := h.state(domain.AppScope, "gh")
	if st.LastSuccess == nil || len(st.LastSuccess.Tools) != 1 || st.LastSuccess.AsOwner != "alice" || !st.RequiresOAuth() {
		t.Fatalf("after: %+v", st)
	}
}
