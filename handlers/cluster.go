package handlers

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/mcpes/mcpes/cluster"
)

// defaultDecisionPage is the limit of GET /v1/cluster/decisions when none is given.
const defaultDecisionPage = 100

// clusterDecisions answers GET /v1/cluster/decisions?node=&before=&limit=: a page of
// the connection decisions every cluster node shipped (or one node's), oldest first,
// each with its node and its record as sealed in that node's log. It covers every
// owner, so it is the admin's; on a node that is not clustered the route does not
// exist.
func (a *api) clusterDecisions(w http.ResponseWriter, r *http.Request, id Identity) error {
	if !id.Admin || a.RecentDecisions == nil {
		return fmt.Errorf("%w: no route %s", ErrNotFound, r.URL.Path)
	}
	q := r.URL.Query()
	var before uint64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: before=%q: want a decisions stream position", ErrInvalidRequest, v)
		}
		before = n
	}
	limit := defaultDecisionPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > cluster.MaxDecisionPage {
			return fmt.Errorf("%w: limit=%q: want a count from 1 to %d", ErrInvalidRequest, v, cluster.MaxDecisionPage)
		}
		limit = n
	}
	node := q.Get("node")
	if len(node) > maxNodeID {
		return fmt.Errorf("%w: node: longer than %d bytes", ErrInvalidRequest, maxNodeID)
	}
	page, err := a.RecentDecisions(r.Context(), node, before, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// maxNodeID bounds the node a decisions query names.
const maxNodeID = 256
