package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/cluster"
	"github.com/mcpes/mcpes/handlers"
)

// The decisions themselves come from a real cluster in cmd/mcpes's
// TestServe_ClusterNodesShareTheConfigLog; here the route's gate and query.
func TestClusterDecisions_AdminOnlyBoundedAndAbsentOffCluster(t *testing.T) {
	// given a single node, then the route does not exist
	single := newSvc(t)
	expect(t, single.do("GET", "/v1/cluster/decisions", adminToken, nil), http.StatusNotFound, "not_found")

	// given a cluster node
	type call struct {
		node   string
		before uint64
		limit  int
	}
	var calls []call
	s := newSvc(t, func(_ *svc, d *handlers.Deps) {
		d.RecentDecisions = func(_ context.Context, node string, before uint64, limit int) (cluster.DecisionPage, error) {
			calls = append(calls, call{node, before, limit})
			return cluster.DecisionPage{Decisions: []cluster.Decision{}, Older: 7}, nil
		}
	})
	// when an owner asks, then it is told there is no such route
	expect(t, s.do("GET", "/v1/cluster/decisions", aliceToken, nil), http.StatusNotFound, "not_found")
	// when the admin asks with bad or oversized parameters, then 400 and nothing is read
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=-1", "node=" + strings.Repeat("n", 257)} {
		expect(t, s.do("GET", "/v1/cluster/decisions?"+q, adminToken, nil), http.StatusBadRequest, "invalid_request")
	}
	if len(calls) != 0 {
		t.Fatalf("invalid queries were read: %+v", calls)
	}
	// when the admin asks for a page, then the page is read as asked (default 100)
	r := s.do("GET", "/v1/cluster/decisions?node=n1&before=42", adminToken, nil)
	expect(t, r, http.StatusOK, "")
	if want := (call{"n1", 42, 100}); len(calls) != 1 || calls[0] != want {
		t.Fatalf("read %+v, want %+v", calls, want)
	}
	if got := strings.TrimSpace(string(r.body)); got != `{"decisions":[],"older":7}` {
		t.Fatalf("body %s", got)
	}
}
