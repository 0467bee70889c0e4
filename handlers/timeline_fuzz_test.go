package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/handlers"
)

// FuzzTimelineQuery sends arbitrary query strings to GET /v1/audit/timeline as the
// admin and as alice. Whatever the query, the handler must not panic, must answer 200
// with at most MaxTimelineBuckets buckets and only the caller's events, or 400.
func FuzzTimelineQuery(f *testing.F) {
	for _, seed := range []string{
		"", "buckets=1", "buckets=500", "buckets=501", "buckets=-1", "buckets=1e3",
		"from=2026-11-24T14:00:00Z&to=2026-11-24T14:01:00Z&buckets=6",
		"from=1700000000&to=1800000000", "from=2026-11-24T14:01:00Z&to=2026-11-24T14:00:00Z",
		"from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z&buckets=500",
		"owner=alice", "owner=_", "owner=bob&server=app-x", "owner=%00", "server=app-x&kind=connection",
		"kind=server.config_changed&kind=connection.refused", "kind=*", "kind=", "to=x", "from=1&to=1",
		"from=-9223372036&to=9223372036",
		"subject=server/app/app-x&kind=server", "subject=conn/bob/app-x&subject=conn/alice/app-x", "subject=x", "subject=conn/",
	} {
		f.Add(seed)
	}
	s := smallLog(f)
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return // the HTTP layer refuses it before the handler
		}
		query = v.Encode()
		for _, tok := range []string{adminToken, aliceToken} {
			req, err := http.NewRequest("GET", s.ts.URL+"/v1/audit/timeline?"+query, nil)
			if err != nil {
				return // not a request a client could send
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := s.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			r := resp{status: res.StatusCode, header: res.Header, body: body}
			switch r.status {
			case http.StatusOK:
				var tl handlers.Timeline
				if err := json.Unmarshal(r.body, &tl); err != nil {
					t.Fatalf("%q: undecodable answer %s", query, r.body)
				}
				if len(tl.Buckets) == 0 || len(tl.Buckets) > handlers.MaxTimelineBuckets || !tl.From.Before(tl.To) {
					t.Fatalf("%q: %d buckets from %s to %s", query, len(tl.Buckets), tl.From, tl.To)
				}
				for _, e := range tl.Events {
					if tok == aliceToken && e.Subject != domain.ConnStream("alice", "app-x") {
						t.Fatalf("%q: alice sees %+v", query, e)
					}
				}
			case http.StatusBadRequest:
				if r.errCode() != handlers.CodeInvalidRequest {
					t.Fatalf("%q: 400 with %s", query, r.body)
				}
			default:
				t.Fatalf("%q: status %d %s", query, r.status, r.body)
			}
		}
	})
}
