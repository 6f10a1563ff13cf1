// Package service is the decider service: an adapter loop around
// approval.Decide that reads commands and writes events in Kafka
// transactions.
//
// # One transaction per poll
//
// Each poll of the commands topic becomes one transaction: for each
// command, load the request's state, call approval.Decide, produce the
// events chained by hash, and finally commit the consumed offsets inside
// the same transaction (kgo.GroupTransactSession). Due expiries found
// since the last poll go into the same transaction. If End reports that
// the transaction aborted, every local effect of the batch (states, chain
// heads) is thrown away; the session rewinds the consumer, and the same
// commands are decided again.
//
// # Owning a partition
//
// Only the owner of command partition p writes events partition p. When p
// is assigned, the decider waits until no other producer has an open
// transaction on events partition p (a fenced zombie's transaction aborts
// within the transaction timeout), then until its projection has applied
// the partition up to its end, and takes the chain head from there.
//
// # State
//
// The projection (libs/projection, with the requests handler) folds every
// events partition into Pebble. Its apply lags the decider's own commits
// by a fetch, so the decider keeps the states it wrote in an overlay until
// the projection has applied past them.
package service
