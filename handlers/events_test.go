package handlers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpes/mcpes/domain"
)

// feedLine is the part of a CloudEvent line the tests read.
type feedLine struct {
	Type     string `json:"type"`
	Subject  string `json:"subject"`
	Sequence string `json:"sequence"`
	Hash     string `json:"hash"`
}

func parseFeed(tb testing.TB, r resp) []feedLine {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		tb.Fatalf("content type %q", ct)
	}
	var out []feedLine
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l feedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("line %q: %v", sc.Text(), err)
		}
		if len(l.Hash) != 64 || !bytes.HasSuffix(sc.Bytes(), []byte(`"hash":"`+l.Hash+`"}`)) {
			tb.Fatalf("line without hash last: %s", sc.Text())
		}
		out = append(out, l)
	}
	return out
}

func subjects(lines []feedLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Subject)
	}
	return out
}

// seedEvents registers an app server, one private server each for alice and bob (with
// secret headers), and connects alice and bob to the app server.
func seedEvents(t *testing.T, s *svc) {
	t.Helper()
	clock := newClock(t)
	cfg := httpCfg(clock.URL)
	cfg["headers"] = map[string]string{"Authorization": "Bearer never-in-clear"}
	expect(t, s.do("PUT", "/v1/servers/clock", adminToken, cfg), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/anotes", aliceToken, cfg), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/bnotes", bobToken, cfg), http.StatusCreated, "")
	expect(t, s.do("POST", "/v1/connections/clock", aliceToken, nil), http.StatusOK, "")
	expect(t, s.do("POST", "/v1/connections/clock", bobToken, nil), http.StatusOK, "")
}

func TestEvents_FeedFiltersAndOwnerScope(t *testing.T) {
	s := newSvc(t)
	seedEvents(t, s)
	head := s.head()

	// when the admin reads the whole feed
	r := s.do("GET", "/v1/events", adminToken, nil)
	expect(t, r, http.StatusOK, "")
	all := parseFeed(t, r)

	// then every event is there, in order, and no secret is in clear
	if uint64(len(all)) != head {
		t.Fatalf("%d events, head %d", len(all), head)
	}
	for i, l := range all {
		if n, _ := strconv.Atoi(l.Sequence); n != i+1 {
			t.Fatalf("line %d has sequence %s", i, l.Sequence)
		}
	}
	if bytes.Contains(r.body, []byte("never-in-clear")) {
		t.Fatal("secret header value in clear in the event feed")
	}

	// and after/limit/type/subject select
	lines := parseFeed(t, s.do("GET", "/v1/events?after=2&limit=3", adminToken, nil))
	if len(lines) != 3 || lines[0].Sequence != all[2].Sequence {
		t.Fatalf("after=2&limit=3: %+v", lines)
	}
	lines = parseFeed(t, s.do("GET", "/v1/events?type=mcpes.connection.opened.v1", adminToken, nil))
	if strings.Join(subjects(lines), " ") != "conn/alice/clock conn/bob/clock" {
		t.Fatalf("type filter: %v", subjects(lines))
	}
	lines = parseFeed(t, s.do("GET", "/v1/events?subject=server/app/clock", adminToken, nil))
	if len(lines) != 2 || lines[0].Type != "mcpes.server.registered.v1" {
		t.Fatalf("subject filter: %+v", lines)
	}

	// and an owner sees only its own streams, whatever it asks for
	for _, path := range []string{"/v1/events", "/v1/events?owner=bob", "/v1/events?subject=conn/bob/clock"} {
		for _, l := range parseFeed(t, s.do("GET", path, aliceToken, nil)) {
			if !strings.HasPrefix(l.Subject, "server/user:alice/") && !strings.HasPrefix(l.Subject, "conn/alice/") {
				t.Fatalf("alice's %s shows %s", path, l.Subject)
			}
		}
	}
	mine := parseFeed(t, s.do("GET", "/v1/events", aliceToken, nil))
	if strings.Join(subjects(mine), " ") != "server/user:alice/anotes server/user:alice/anotes conn/alice/clock" {
		t.Fatalf("alice's feed: %v", subjects(mine))
	}
	// and the admin can ask for one owner
	bobs := parseFeed(t, s.do("GET", "/v1/events?owner=bob", adminToken, nil))
	if len(bobs) != 3 {
		t.Fatalf("admin's view of bob: %v", subjects(bobs))
	}

	// and bad parameters are 400
	expect(t, s.do("GET", "/v1/events?after=x", adminToken, nil), http.StatusBadRequest, "invalid_request")
	expect(t, s.do("GET", "/v1/events?limit=-1", adminToken, nil), http.StatusBadRequest, "invalid_request")
}

func TestEvents_FollowReceivesNewEvents(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)
	expect(t, s.do("PUT", "/v1/servers/first", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")
	start := s.head()

	// given a client following the feed from the current head
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.ts.URL+"/v1/events?after="+strconv.FormatUint(start, 10), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Accept", "text/event-stream")
	res, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("follow: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	frames := make(chan string, 64)
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		var frame strings.Builder
		for sc.Scan() {
			if sc.Text() == "" {
				frames <- frame.String()
				frame.Reset()
				continue
			}
			frame.WriteString(sc.Text() + "\n")
		}
	}()
	first := <-frames // the opening comment: the stream is established
	if !strings.HasPrefix(first, ":") {
		t.Fatalf("first frame %q", first)
	}

	// when a new server is registered after the follow started
	expect(t, s.do("PUT", "/v1/servers/second", adminToken, httpCfg(clock.URL)), http.StatusCreated, "")

	// then its event arrives with the log position as SSE id, and heartbeats keep coming
	var got string
	heartbeats := 0
	for got == "" || heartbeats == 0 {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("stream ended")
			}
			switch {
			case strings.HasPrefix(f, ": heartbeat"):
				heartbeats++
			case strings.Contains(f, "server/app/second") && got == "":
				got = f
			}
		case <-ctx.Done():
			t.Fatalf("no event (got %q, %d heartbeats)", got, heartbeats)
		}
	}
	want := "id: " + strconv.FormatUint(start+1, 10) + "\nevent: mcpes.server.registered.v1\ndata: {"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("frame %q, want prefix %q", got, want)
	}
}

func TestEvents_FollowIsOwnerScoped(t *testing.T) {
	s := newSvc(t)
	clock := newClock(t)

	// given alice following the live feed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.ts.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	req.Header.Set("Accept", "text/event-stream")
	res, err := s.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	if _, err := rd.ReadString('\n'); err != nil { // the opening comment
		t.Fatal(err)
	}

	// when bob and then alice register servers
	expect(t, s.do("PUT", "/v1/servers/bobs", bobToken, httpCfg(clock.URL)), http.StatusCreated, "")
	expect(t, s.do("PUT", "/v1/servers/alices", aliceToken, httpCfg(clock.URL)), http.StatusCreated, "")

	// then the first event alice receives is her own
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			if !strings.Contains(line, `"subject":"`+domain.ServerStream(domain.UserScope("alice"), "alices")+`"`) {
				t.Fatalf("alice received %s", line)
			}
			return
		}
	}
}
