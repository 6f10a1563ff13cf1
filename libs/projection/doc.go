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
//
// # Handlers
//
// The runner knows offsets and bytes; a [Handler] knows what an event
// means. The handler writes its effects into the same batch as the offsets
// (an indexed batch, so it reads its own writes). The hash of every record
// value is kept per partition as the chain head, which the decider needs
// to extend the chain and the auditor to check it.
package projection
