package replaytest

import (
	"time"

	"github.com/mcpes/mcpes/domain"
)

// scenario is one recorded story; record writes it through a builder.
type scenario struct {
	name   string
	record func(b *builder)
	// owners whose server lists go into the golden file ("" = the app level).
	owners []string
}

var app = domain.AppScope

func httpServer(host string) domain.ServerConfig {
	return domain.ServerConfig{Type: "streamable-http", URL: "http://127.0.0.1:" + host + "/mcp", TimeoutMS: 10000, InitTimeoutMS: 5000}
}

var scenarios = []scenario{
	{
		// Startup: three app servers; one is down (its inspection fails and it stays a
		// stub), one connects only on the second try and then trips a breaker.
		name: "startup_server_down", owners: []string{"", "alice"},
		record: func(b *builder) {
			clock := httpServer("7401")
			clock.Headers = map[string]string{"Authorization": "Bearer clock-token"}
			b.put(app, "clock", clock)
			b.put(app, "weather", httpServer("7402"))
			b.put(app, "flaky", httpServer("7403"))
			b.inspectOK(app, "clock", "now", "timezone")
			b.inspectFail(app, "weather", domain.FailureUnreachable, "dial tcp 127.0.0.1:7402: connect: connection refused")
			b.inspectOK(app, "flaky", "coin")
			b.get("", "clock", getOpts{})
			b.get("", "weather", getOpts{})
			b.get("alice", "weather", getOpts{count: 7})
			b.get("alice", "clock", getOpts{})
			b.get("alice", "flaky", getOpts{connectFails: true})
			b.get("alice", "flaky", getOpts{connectFails: true})
			b.get("alice", "flaky", getOpts{breaker: true, count: 3})
			b.get("bob", "flaky", getOpts{})
		},
	},
	{
		// Recovery: a failed server is reinspected twice; the first time it is still
		// down, the second time it answers, its version moves on and it connects.
		name: "recovery_by_reinspection", owners: []string{"", "alice"},
		record: func(b *builder) {
			b.put(app, "weather", httpServer("7402"))
			b.inspectFail(app, "weather", domain.FailureTimeout, "initialize: context deadline exceeded")
			b.get("", "weather", getOpts{})
			b.reinspect(app, "weather")
			b.inspectFail(app, "weather", domain.FailureUnreachable, "dial tcp 127.0.0.1:7402: connect: connection refused")
			b.wait(time.Minute)
			b.reinspect(app, "weather")
			b.inspectOK(app, "weather", "forecast", "alerts")
			b.get("", "weather", getOpts{})
			b.get("alice", "weather", getOpts{})
		},
	},
	{
		// Config changed twice while connections are open: each change makes them
		// stale; the next Get of each owner evicts and reconnects. The second change
		// also changes the tool catalogue (drift).
		name: "config_changed_twice", owners: []string{"", "alice"},
		record: func(b *builder) {
			b.put(app, "files", httpServer("7404"))
			b.inspectOK(app, "files", "read", "write")
			b.get("", "files", getOpts{})
			b.get("alice", "files", getOpts{})
			b.get("alice", "files", getOpts{}) // alive and fresh: reused, no event
			v2 := httpServer("7404")
			v2.TimeoutMS = 20000
			b.put(app, "files", v2)
			b.inspectOK(app, "files", "read", "write")
			b.get("alice", "files", getOpts{})
			v3 := v2.Clone()
			v3.URL = "http://127.0.0.1:7405/mcp"
			v3.Headers = map[string]string{"X-Api-Key": "files-key"}
			b.put(app, "files", v3)
			b.inspectOK(app, "files", "read", "write", "search")
			b.get("", "files", getOpts{})
			b.get("alice", "files", getOpts{})
		},
	},
	{
		// A server removed while a user is connected, then registered again.
		name: "removed_and_readded", owners: []string{"", "alice"},
		record: func(b *builder) {
			b.put(app, "notes", httpServer("7406"))
			b.inspectOK(app, "notes", "list", "add")
			b.get("alice", "notes", getOpts{})
			b.remove(app, "notes")
			b.get("alice", "notes", getOpts{})
			b.wait(10 * time.Minute)
			b.put(app, "notes", httpServer("7407"))
			b.inspectOK(app, "notes", "list", "add", "delete")
			b.get("alice", "notes", getOpts{})
		},
	},
	{
		// A private server is shadowed when the operator adds an app server of the same
		// name: the owner's connection to the private one goes stale and is replaced by
		// one to the app server. Removing the app server uncovers the private one again.
		name: "private_shadowed_by_app", owners: []string{"", "alice", "bob"},
		record: func(b *builder) {
			alice := domain.UserScope("alice")
			priv := domain.ServerConfig{Type: "sse", URL: "https://search.alice.example.com/sse", Headers: map[string]string{"Authorization": "Bearer alice-secret"}}
			b.put(alice, "search", priv)
			b.inspectOK(alice, "search", "query")
			b.get("alice", "search", getOpts{})
			b.get("bob", "search", getOpts{})
			b.put(app, "search", httpServer("7408"))
			b.inspectOK(app, "search", "query", "suggest")
			b.get("alice", "search", getOpts{})
			b.get("bob", "search", getOpts{})
			b.remove(app, "search")
			b.get("alice", "search", getOpts{})
			b.get("bob", "search", getOpts{})
		},
	},
	{
		// Idle eviction one server at a time, a connection lost mid-call and replaced
		// as dead on the next Get, and the shutdown of the shared repository.
		name: "idle_eviction", owners: []string{"", "alice", "bob"},
		record: func(b *builder) {
			b.put(app, "clock", httpServer("7401"))
			b.put(app, "files", httpServer("7404"))
			b.inspectOK(app, "clock", "now")
			b.inspectOK(app, "files", "read")
			b.get("alice", "clock", getOpts{})
			b.get("alice", "files", getOpts{})
			b.get("bob", "clock", getOpts{})
			b.get("", "clock", getOpts{})
			b.wait(16 * time.Minute)
			b.evict("alice", "clock", domain.EvictIdle)
			b.evict("alice", "files", domain.EvictIdle)
			b.lose("bob", "clock", "stdio: child exited with status 1")
			b.get("bob", "clock", getOpts{})
			b.evict("", "clock", domain.EvictShutdown)
		},
	},
}
