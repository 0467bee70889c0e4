// Package projections folds the event log into read models: the server-config
// projection the connection repositories read (Servers), the connections projection
// (Connections), and "as of" views at any past position or time (AsOf, AsOfTime,
// ConnectionsAsOf, Rebuild with a bound).
//
// How a projection stays correct:
//
//   - Every projection has a position: the last log position it has applied. Apply
//     (a store.Observer) skips events at or below it, so deliveries that overlap a
//     replay are harmless.
//   - Load registers the projection as an observer before it reads the tail of the
//     log after its snapshot. Commits made meanwhile arrive through the observer;
//     those beyond a gap wait until the tail read reaches them. Nothing is lost and
//     nothing is applied twice.
//   - Replays check the hash chain (from the snapshot's stored hash on), and scan each
//     record's canonical JSON for the envelope fields they need instead of decoding it;
//     only server events are decoded in full (events.Decode, with upcasting).
//     Hashing and folding run on two goroutines.
//   - A snapshot stores the projection format, position and hash; one of another format
//     or one that does not match the log is discarded and the log replayed from 0.
//
// Servers.Effective is the hot path of the connection repository: in memory, one read
// lock of one of 64 shards, no allocation, and the position its answer is consistent
// with (a fold stores the position under the lock of the shard it changed).
package projections
