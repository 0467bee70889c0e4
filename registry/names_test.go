package registry_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/registry"
)

func TestService_Put_RefusesAToolPrefixCollision(t *testing.T) {
	// given an app server whose name is mapped for the /mcp aggregate
	h := newHarness(t, nil, registry.Options{InspectOnPut: registry.InspectOff})
	if _, err := h.Svc.Put(ctx(t), "admin", domain.AppScope, "google calendar", httpConfig("http://127.0.0.1:1/mcp")); err != nil {
		t.Fatal(err)
	}
	// when alice registers a server spelled like that mapped prefix
	clash := domain.ToolPrefix("google calendar")
	_, err := h.Svc.Put(ctx(t), "owner:alice", domain.UserScope("alice"), clash, httpConfig("https://mcp.example.com/mcp"))
	// then it is refused naming both servers, and nothing is written
	var verr *domain.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "google calendar") {
		t.Fatalf("err = %v", err)
	}
	if h.state(domain.UserScope("alice"), clash).Exists {
		t.Fatal("the clashing server was registered")
	}
	// and a file with both is refused as a whole
	_, err = h.Svc.Reconcile(ctx(t), registry.ConfigFile{Servers: map[string]domain.ServerConfig{"a b": httpConfig("http://127.0.0.1:1/mcp"),
		domain.ToolPrefix("a b"): httpConfig("http://127.0.0.1:1/mcp")}})
	if !errors.As(err, &verr) {
		t.Fatalf("reconcile err = %v", err)
	}
}
