// Package relay publishes the event log to Watermill: the log is the outbox.
//
// A Relay reads the store from its checkpoint (store.Store.Checkpoint under its name,
// e.g. "relay:nats"), publishes every event through a watermill message.Publisher, and
// moves its checkpoint only after the publisher acknowledged the whole batch (256
// events by default; one checkpoint write per batch, off the publishing path). It is
// woken by commits (store.Store.Wait, no polling) and retries a failing publisher or
// store with exponential backoff and jitter, never skipping an event. Delivery is
// therefore at-least-once and in log order per topic; a subscriber dedupes by event id
// or by sequence, which only grows within a topic (Dedupe does both).
//
// Relay.Lag reports how far the relay is behind (events: head - published; seconds:
// age of the oldest unpublished event) and Relay.Stats its counters and the error it
// is retrying, for metrics and readiness.
//
// # Topics
//
// Every event is published to two topics. The names contain no dots, so they are valid
// NATS JetStream stream names and subjects as they are (stream name = subject = topic):
//
//	mcpes_events       every event (AllTopic)
//	mcpes_server       server.* events: registered, config_changed, removed,
//	                   inspected, inspection_failed, tools_changed,
//	                   reinspection_requested
//	mcpes_connection   connection.* events: opened, open_failed, refused, evicted, lost
//	mcpes_tool         tool.called (only written when the operator enabled it)
//
// # Messages
//
// Message UUID = event id (a UUIDv7). Payload = the CloudEvents 1.0 structured JSON of
// the envelope, hash included (what `mcpes export` prints). Metadata (NATS headers on
// JetStream):
//
//	type             the CloudEvents type, e.g. mcpes.server.inspection_failed.v1
//	subject          the stream, server/<scope>/<name> or conn/<owner>/<server>
//	sequence         the global log position, decimal
//	correlation_id   the event's correlation id (watermill middleware.CorrelationID key),
//	                 only when the event has one
//	Nats-Msg-Id      the event id: JetStream drops a second copy inside the stream's
//	                 duplicate window (2 minutes by default)
//
// # Targets
//
// In process (the default): NewInProcess wraps a watermill GoChannel configured with
// BlockPublishUntilSubscriberAck, so subscribers see events in log order and a slow
// subscriber slows the relay instead of losing events. GoChannel is live only: a
// message published while nobody subscribes is dropped (the relay still moves on). A
// subscriber that needs history uses InProcess.Follow, which reads the store first and
// then switches to the live feed without a gap.
//
// NATS JetStream: NewNATSPublisher creates or updates one durable, file-backed stream
// per topic at start (the publisher itself never provisions, which would cost a round
// trip per publish; after a failed publish the streams are ensured again once, in case
// the server came back empty) and publishes through watermill-nats with the event id
// as the JetStream message id, so a batch published again after a crash is dropped by
// the server inside the duplicate window. Each message waits for its acknowledgement
// before the next one of the same topic is sent: pipelining would let a message lost
// in a reconnect be stored after later ones, which breaks the order subscribers rely
// on. The topics of a batch are published concurrently.
//
// FollowNATS is the independent consumer behind `mcpes events --follow --from
// nats://HOST:PORT [--durable NAME]`: a durable or ephemeral JetStream pull consumer
// (nats.go's jetstream API, which exposes the stream sequence it needs) that keeps log
// order across NATS restarts by fetching any message the server skipped, and dedupes.
package relay
