package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestEndStreams_CancelsGetStreamsButDrainsCalls(t *testing.T) {
	for _, c := range []struct {
		method     string
		wantCancel bool
	}{
		{http.MethodGet, true},   // an events feed or MCP listen stream ends at shutdown
		{http.MethodPost, false}, // an MCP tool call is drained, not cut off
	} {
		t.Run(c.method, func(t *testing.T) {
			// given a request in flight that accepts text/event-stream
			streams, shutdown := context.WithCancel(context.Background())
			defer shutdown()
			entered, cancelled := make(chan struct{}), make(chan bool, 1)
			h := endStreams(streams, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				select {
				case <-r.Context().Done():
					cancelled <- true
				case <-time.After(300 * time.Millisecond):
					cancelled <- false
				}
			}))
			req := httptest.NewRequest(c.method, "/mcp", nil)
			req.Header.Set("Accept", "application/json, text/event-stream")
			done := make(chan struct{})
			go func() { h.ServeHTTP(httptest.NewRecorder(), req); close(done) }()
			<-entered
			// when the server shuts down
			shutdown()
			// then only the GET stream is cancelled
			if got := <-cancelled; got != c.wantCancel {
				t.Errorf("%s cancelled = %v, want %v", c.method, got, c.wantCancel)
			}
			<-done
		})
	}
}
