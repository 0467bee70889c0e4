// Package relay publishes the event log to Watermill: the log is the outbox.
//
// A Relay reads the store from its checkpoint, publishes every event through a
// watermill message.Publisher, and moves its checkpoint only after the publisher
// acknowledged the whole batch. It is woken by commits (store.Store.Wait), batches,
// and retries a failing publisher with exponential backoff and jitter, never skipping
// an event. Delivery is therefore at-least-once and in log order per topic; a
// subscriber dedupes by event id (or by sequence, which only grows within a topic).
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
// trip per publish) and publishes with the event id as the JetStream message id.
// FollowNATS is the independent consumer behind `mcpes events --follow --from nats://`.
package relay
