// Package core is the decider without Kafka: what it owns, what it has
// staged, and what it writes. The service's adapter (package txn) feeds it
// command records and partition assignments from a transactional Kafka
// session, produces the records it returns, and tells it whether the
// transaction committed. Everything here is deterministic given its
// inputs, so it is tested with scenario files (testdata/*.txt, read by a
// datadriven runner) that need no broker.
//
// # Ownership and epochs
//
// Assign gives the core command partitions; every assignment starts a new
// epoch for that partition. A partition is decided only once it is caught
// up: its projection has applied the events partition to its end, and the
// chain head is taken from there (CaughtUp). Anything staged or merged
// under an older epoch is dropped, so a partition revoked and assigned
// again while a transaction or a catch-up was in flight cannot be written
// with a stale head.
//
// # Transactions and the overlay
//
// Begin starts a transaction (Txn). Each command record is decided with
// approval.Decide against the request's state: staged in this transaction,
// else written by an earlier committed transaction but not yet projected
// (the overlay), else projected (the Store). The events are chained by hash
// from the partition's head and returned as records to produce. On commit
// (Commit) the new heads and states are kept; on abort the Txn is simply
// dropped and nothing it staged survives.
//
// # Seals
//
// Seal ends the run of records a transaction wrote to each partition with
// a signed seal (wire.Seal): every reader applies only what a valid seal
// covers, so a record the deciders did not write is never acted on. The
// chain head the core extends is the authenticated head: the projection
// authenticates before it applies, so a forged record never becomes part
// of the chain a decider writes.
//
// # Missing records and undecidable commands
//
// Stop stops deciding a partition whose records are missing (commands lost
// before they were decided, or an events partition the projection stopped
// reading, whose head is not the log's): it needs no catch-up, its head is
// never extended, its timers ask for nothing, and a transaction that meets
// one of its commands fails with ErrNotOwned, so none of the transaction's
// offsets commit. A command that cannot be decided (the state of its
// request cannot be loaded, its events cannot be encoded) is quarantined
// instead: it stages nothing and the transaction goes on (Txn.Command).
// See docs/architecture.md, I1.
//
// # Timers
//
// Timers returns an expire command for every due request of the caught-up
// partitions; it never writes an event. The adapter sends the commands to
// the commands topic, and they are decided like any other, in a
// transaction that consumes them and is therefore fenced by the consumer
// group. No transaction ever writes without consuming, so every write,
// seals included, is fenced.
//
// See docs/architecture.md for the invariants these rules serve.
package core
