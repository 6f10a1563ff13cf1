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
//     the caller hear a 2xx (invariant I1); a failed send is ErrUnavailable.
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
package app
