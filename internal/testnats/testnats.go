// Package testnats runs an embedded NATS server with JetStream on loopback for tests.
package testnats

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs an embedded JetStream server on 127.0.0.1:port (-1 for a free port)
// with its store in dir, quiet and without signal handlers, and shuts it down at
// cleanup (shutting it down earlier is fine). It fails tb when the server cannot be
// built or is not ready for connections within 10 s.
func Start(tb testing.TB, port int, dir string) *server.Server {
	tb.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats server not ready")
	}
	tb.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}
