// Package app is what the api service does, without HTTP: it turns a
// caller's intention into a command, makes the command durable in Kafka,
// and waits for its outcome to appear in the service's projection of the
// events topic. It also answers the queries that the projection serves.
//
// # Writes
//
// Each write (Submit, Vote, Cancel) follows the same steps:
//
//  1. Check what the caller may say: only a principal with the on_behalf
//     role may name a requester or a voter.
//  2. Build the command and run it through the domain's own Decide against
//     an empty state (the preflight), so that a body the decider would
//     refuse as invalid is refused here, with the same detail, and never
//     reaches the log.
//  3. Look at the projection: a command whose outcome is already known
//     (an Idempotency-Key retry, an identical resubmit) is answered without
//     producing anything.
//  4. Send the command with acks=all. Only after Kafka acknowledged it may
//     the caller hear a 2xx (invariant I1). A failed send is
//     ErrOutcomeUnknown, never "nothing happened": Kafka may have written
//     the record and lost the acknowledgement. The Result still names the
//     request and the command, so that the caller can be told what to
//     retry (see "Outcome unknown" below).
//  5. Wait, up to the write wait, for the outcome: the command id in the
//     request's Outcomes (accepted or refused), or, for a submit, the
//     request existing with the same content hash (an identical resubmit
//     adds no events). A watch on the request id is registered before every
//     read of the store, so an event applied between the read and the wait
//     still wakes the writer. When the wait runs out the result says so,
//     and the caller gets 202: the command is durable and will be decided.
//
// # Command ids and Idempotency-Key
//
// A command id is a new UUIDv7, unless the caller sent an Idempotency-Key.
// Then it is derived from the key, the caller, the actor, the command type
// and the request id (a name-based UUIDv8), so that a retry carries the
// same command id and the decider reports the original outcome instead of
// deciding twice (I2). The command id travels in the commandid extension;
// eventlog gives a command whose id is not a UUIDv7 a fresh UUIDv7 as its
// CloudEvents id. A submit with a key and without a request_id gets a
// request id derived the same way, so that its retries name one request.
//
// A key names one intention. When the key's command was accepted with
// another body (a vote of another decision or comment, a cancel with
// another reason), the write is refused with a *KeyReusedError, whether
// the outcome was in the projection before the send or appeared after it
// (two bodies under one key at once: the decider decides the command id
// once, and the other body is refused). A key whose command was refused
// answers that refusal: no refusal of a vote or cancel depends on its
// decision, comment or reason. A submit's key reused for other content is
// the conflict refusal, as a reused request id is.
//
// # Outcome unknown
//
// When the send fails, the write's outcome is unknown, and Submit, Vote
// and Cancel return ErrOutcomeUnknown with a Result naming the request id
// and the command id. They are stable for a retry: with the same key, the
// command id is the same, so the decider's command-id dedupe (I2 in
// docs/architecture.md) decides it at most once, and the retry is answered
// from the projection once the first attempt's outcome is there. A submit
// without request_id and key has its request id made (a UUIDv7) before the
// send, so the caller can retry with it as request_id: an identical
// resubmit, which adds nothing. Without a key, a vote's or cancel's retry
// is a new command (still counted once: a voter votes once, a request is
// cancelled once).
package app
