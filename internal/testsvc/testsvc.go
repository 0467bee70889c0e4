// Package testsvc builds, for tests, the core of the real service over one store:
// the servers projection, the registry, the connection manager and the API's
// token authentication, wired as `mcpes serve` wires them but for loopback
// upstreams and fixed test tokens.
package testsvc

import (
	"context"
	"testing"
	"time"

	"github.com/mcpes/mcpes/connections"
	"github.com/mcpes/mcpes/handlers"
	"github.com/mcpes/mcpes/projections"
	"github.com/mcpes/mcpes/registry"
	"github.com/mcpes/mcpes/store"
	"github.com/mcpes/mcpes/upstream"
)

// Tokens the Stack's Auth accepts: the admin's, and the owners alice's and bob's.
const (
	AdminToken = "admin-token"
	AliceToken = "alice-token"
	BobToken   = "bob-token"
)

// Stack is the service core over one store.
type Stack struct {
	Servers  *projections.Servers
	Registry *registry.Service
	Manager  *connections.Manager
	Auth     *handlers.Auth
}

// New builds the Stack over st: the servers projection (no snapshot), the registry
// (synchronous inspection on put, node "test"), the connection manager (source
// mcpes://test, idle timeout 1 h, secrets read from st, with tune applied to its
// options when not nil), upstreams limited to 127.0.0.1, and Auth with AdminToken,
// AliceToken and BobToken. It fails tb on any error. The caller closes the manager
// and the registry.
func New(tb testing.TB, st store.Store, tune func(*connections.Options)) *Stack {
	tb.Helper()
	servers, err := projections.Load(context.Background(), st, projections.Options{NoSnapshot: true})
	if err != nil {
		tb.Fatalf("load servers: %v", err)
	}
	guard := &upstream.Guard{AllowedDomains: []string{"127.0.0.1"}}
	reg, err := registry.New(st, servers, guard, registry.Options{InspectOnPut: registry.InspectSync, NodeID: "test"})
	if err != nil {
		tb.Fatalf("registry: %v", err)
	}
	secrets := func(ref string) (string, error) {
		b, err := st.Secret(context.Background(), ref)
		return string(b), err
	}
	opts := connections.Options{Source: "mcpes://test", IdleTimeout: time.Hour,
		Upstream: upstream.Options{Secrets: secrets, Guard: guard}, UserValues: reg.OwnerValues(servers),
		InspectOwner: reg.InspectOwnerAsync}
	if tune != nil {
		tune(&opts)
	}
	mgr := connections.NewManager(st, servers, opts)
	auth, err := handlers.NewAuth([]handlers.TokenConfig{
		{SHA256: handlers.HashToken(AliceToken), Role: handlers.RoleOwner, Owner: "alice"},
		{SHA256: handlers.HashToken(BobToken), Role: handlers.RoleOwner, Owner: "bob"},
	}, AdminToken)
	if err != nil {
		tb.Fatalf("auth: %v", err)
	}
	return &Stack{Servers: servers, Registry: reg, Manager: mgr, Auth: auth}
}
