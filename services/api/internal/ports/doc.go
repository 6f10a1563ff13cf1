// Package ports is the api's HTTP edge: the echo routes of HTTP API v1
// (schemas/openapi.yaml), bearer authentication, strict JSON bodies, the
// request view, and the mapping of every error to an RFC 9457 problem.
//
// # Status codes
//
// A refusal carries a reason code, and each code has one status:
//
//	unauthenticated                                  401
//	forbidden, not_eligible, self_approval           403
//	not_found                                        404
//	conflict, duplicate_vote, already_decided,
//	expired                                          409
//	invalid, no_policy                               422
//
// expired is 409, not 410: the request still exists and can be read; what
// conflicts is the command with its state, as for already_decided.
//
// Requests that cannot be parsed at all are 400 with code invalid: a body
// that is not JSON, has unknown or repeated fields or wrong JSON types, a
// malformed query parameter or cursor, or a bad Idempotency-Key. 422 means
// the body parsed but the domain refuses its content. The HTTP layer's own
// refusals carry a code too: an unknown route is 404 not_found, a wrong
// method 405, a body over ASSENT_MAX_BODY 413 and a body that is not
// application/json 415, all with code invalid; a principal over its write
// rate or its long polls on the replica is 429 rate_limited with
// Retry-After (limits.go).
//
// 5xx problems have type about:blank and no code: they are not refusals.
// 503 means the projection is still catching up; Retry-After says when to
// try again. A 500 is a bug; it is logged with its stack when it was a
// panic. The exception is 503 outcome_unknown: Kafka did not acknowledge
// a write's command, which may be in the log anyway. Its problem has the
// code, its README section as type, request_id and command_id, Retry-After
// and a Location; a retry with the same Idempotency-Key is the same
// command. A key reused for a vote or cancel of another body is 422
// idempotency_key_reused. While the replica cannot reach Kafka, a write
// is 503 writes_unavailable at once, with Retry-After: nothing was sent.
// None of these codes is an approval.ReasonCode: no command.rejected event
// carries them. A long poll over the replica's cap is 503 without a code.
//
// # Writes
//
// A write answers 201 (submit) or 200 (vote, cancel) with the request view
// once its outcome is in this replica's projection, the refusal's problem
// if it was refused, or 202 {status: accepted, request_id, command_id} with
// a Location header when the outcome did not appear within
// ASSENT_WRITE_WAIT. Every 2xx means Kafka acknowledged the command.
package ports
