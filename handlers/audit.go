package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpes/mcpes/audit"
)

// ExplainResponse is the body of GET /v1/audit/explain: the explanation and the same
// in words.
type ExplainResponse struct {
	audit.Explanation
	Text string `json:"text"`
}

func (a *api) explain(w http.ResponseWriter, r *http.Request, id Identity) error {
	q := r.URL.Query()
	owner := id.Owner
	if id.Admin {
		owner = q.Get("owner")
	}
	server := q.Get("server")
	if server == "" {
		return fmt.Errorf("%w: server= is required", ErrInvalidRequest)
	}
	at := a.Clock()
	if v := q.Get("at"); v != "" {
		t, err := ParseTime(v)
		if err != nil {
			return err
		}
		at = t
	}
	ex, err := audit.Explain(r.Context(), a.Store, owner, server, at)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ExplainResponse{Explanation: ex, Text: ex.Text()})
	return nil
}

// ParseTime reads a time parameter: RFC 3339 (with or without fractional seconds),
// or Unix seconds. Returns ErrInvalidRequest otherwise.
// Times outside years 1 to 9999 are ErrInvalidRequest too: Unix seconds beyond them
// would wrap around.
func ParseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < minUnix || n > maxUnix {
			return time.Time{}, fmt.Errorf("%w: time %q: Unix seconds out of range (years 1 to 9999)", ErrInvalidRequest, v)
		}
		return time.Unix(n, 0), nil
	}
	return time.Time{}, fmt.Errorf("%w: time %q: want RFC 3339 (2006-01-02T15:04:05Z) or Unix seconds", ErrInvalidRequest, v)
}

// The Unix seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

func (a *api) verify(w http.ResponseWriter, r *http.Request, id Identity) error {
	if !id.Admin {
		// Verification covers every owner's events: admin only, and to an owner the
		// route does not exist.
		return fmt.Errorf("%w: no route %s", ErrNotFound, r.URL.Path)
	}
	// The body may list checkpoint notes (already checked by the caller with the
	// public key) to check the log against.
	var body struct {
		Checkpoints []string `json:"checkpoints"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: body: %v", ErrInvalidRequest, err)
		}
	}
	var cps []audit.Checkpoint
	for i, n := range body.Checkpoints {
		c, err := audit.ParseCheckpoint([]byte(n))
		if err != nil {
			return fmt.Errorf("%w: checkpoints[%d]: %v", ErrInvalidRequest, i, err)
		}
		cps = append(cps, c)
	}
	rep, err := audit.VerifyAll(r.Context(), a.Store, nil, audit.WithCheckpoints(cps...))
	if err != nil {
		return err
	}
	out := struct {
		audit.VerifyReport
		// ClusterDecisions counts the decisions each cluster node shipped.
		ClusterDecisions map[string]int `json:"clusterDecisions,omitempty"`
	}{VerifyReport: rep}
	if a.ClusterDecisions != nil {
		perNode, problems, err := a.ClusterDecisions(r.Context())
		if err != nil {
			return err
		}
		out.ClusterDecisions = perNode
		out.Problems = append(out.Problems, problems...)
		out.OK = out.OK && len(problems) == 0
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// export writes the events the query selects as JSON Lines with their original
// sequence and hash: an owner token gets only its own streams. With proofs=1 each
// event is followed by its inclusion proof against the newest stored checkpoint
// (events after it are left out), which `mcpes verify-export` checks with the public
// key alone.
func (a *api) export(w http.ResponseWriter, r *http.Request, id Identity) error {
	q := r.URL.Query()
	f := audit.Filter{Owner: id.Owner, Server: q.Get("server"), Types: q["type"]}
	if id.Admin {
		f.Owner = q.Get("owner")
	}
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(b.name); v != "" {
			t, err := ParseTime(v)
			if err != nil {
				return err
			}
			*b.t = t
		}
	}
	if q.Get("proofs") == "" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, err := audit.Export(r.Context(), a.Store, f, w, nil)
		return err
	}
	cp, err := audit.StoredCheckpoint(r.Context(), a.Store)
	if err != nil {
		return fmt.Errorf("%w: no signed checkpoint to prove against yet (%v)", ErrNotFound, err)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	_, err = audit.ExportProofs(r.Context(), a.Store, f, cp, w, nil)
	return err
}
