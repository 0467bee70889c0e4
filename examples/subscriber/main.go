// Command subscriber is an example mcpes event subscriber: it posts failed server
// inspections (server.inspection_failed) and tool drift (server.tools_changed) to a
// webhook as JSON.
//
// Over NATS JetStream, next to `mcpes serve --pubsub nats://HOST:PORT`:
//
//	subscriber -nats nats://127.0.0.1:4222 -durable alerts -webhook https://hooks.example/mcpes
//
// In process, an embedding program calls relay.InProcess.Subscribe with the same
// filter (see startInProcess); GoChannel has no history, so it sees live events only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "subscriber:", err)
		os.Exit(1)
	}
}

// run parses args and forwards events until ctx ends. Returns a usage error for bad
// flags, or the first failed post.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats", "", "NATS JetStream URL (nats://HOST:PORT) the mcpes relay publishes to")
	durable := fs.String("durable", "", "durable consumer name: resume after the last posted event on restart")
	webhook := fs.String("webhook", "", "URL to POST notifications to (required)")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one webhook call")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *webhook == "" || *natsURL == "" {
		fs.Usage()
		return errors.New("-nats and -webhook are required")
	}
	w := &Webhook{URL: *webhook, Client: &http.Client{Timeout: *timeout}}
	return forwardNATS(ctx, *natsURL, *durable, w)
}
