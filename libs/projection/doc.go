// Package projection keeps a local Pebble store in step with the events
// topic. Every reader of Assent (api, decider, slack-gateway, auditor)
// builds its own state this way; none of them shares a database.
//
// # What the runner guarantees
//
//   - It consumes every partition of the events topic directly, without a
//     consumer group, with read_committed, so any replica can answer for
//     any request.
//   - Each poll is applied in one Pebble batch together with the next
//     offset of every partition it touched, so after a crash nothing is
//     applied twice and nothing is skipped. Batches are written without
//     fsync: Pebble recovers a prefix of its batches, and the offsets in
//     that prefix say where to resume. The store is a cache of the log.
//   - Control records (transaction markers) are kept and skipped, so that
//     a partition's next offset reaches the last stable offset exactly and
//     "caught up" is a plain comparison.
//   - It wipes and rebuilds the store when it belongs to another cluster or
//     another incarnation of the topic, or to another layout of the
//     handler (see [Versioned]), or when its offsets are ahead of the log
//     (the topic was truncated or recreated).
//   - It is ready once it has applied everything committed before it
//     started (the end offsets it captured then).
//   - Waiters are woken after the batch holding their subject is durable in
//     the store, so a woken reader always sees what woke it.
//   - A poll is decoded and authenticated (partitions in parallel) while
//     the previous one is committed; the order of records within a
//     partition, and everything above, is kept.
//
// # Snapshots
//
// A replica without a store can start from a snapshot of a peer's store
// ([Bootstrap], [Runner.Snapshot], [SnapshotServer]): a Pebble checkpoint
// with a manifest of its identity, offsets, heads and files. It is
// untrusted input: Bootstrap uses it only once its files match the
// manifest, its identity is this cluster's and topic's, and every head it
// claims is the hash of a seal of the log that the published keys verify,
// with nothing authenticated between that seal and where it resumes;
// otherwise it is refused and the store is rebuilt from the log
// (docs/architecture.md, "Bootstrap from a snapshot").
//
// # Handlers
//
// The runner knows offsets and bytes; a [Handler] knows what an event
// means. The handler writes its effects into the same batch as the offsets
// (an indexed batch, so it reads its own writes). A [BatchHandler] folds a
// batch's events in one call, and a [Preparer] does the work that needs
// no store (decoding) in the parallel stage. The hash of every record
// value is kept per partition as the chain head, which the decider needs
// to extend the chain and the auditor to check it.
package projection
