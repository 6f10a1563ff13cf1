// Package approval is the pure core of Assent: the commands, events, request
// state and policy snapshot of a just-in-time approval, and the three
// functions that give them meaning.
//
// # Decide, Evolve, Fold
//
//   - [Decide] takes the current [State] of one request, a [Command], the
//     [Policies] in force and the current time, and returns a [Decision]: the
//     events to append, or a [Refusal] with a stable [ReasonCode].
//   - [Evolve] applies one [Event] to a [State] and returns the next state.
//   - [Fold] replays a request's events from the empty state.
//
// The package has no I/O and no clock: time is always a parameter, so the
// same inputs give the same outputs on every replica and in every replay.
// It imports only the standard library, and no Kafka, HTTP or storage type
// appears here. The decider service is an adapter loop around [Decide]; every
// projection is an adapter loop around [Evolve].
//
// # Closed sets
//
// Commands ([Submit], [Vote], [Cancel], [RecordNotification], [Expire]) and
// event bodies ([RequestSubmitted], [VoteRecorded], [RequestApproved],
// [RequestRejected], [RequestExpired], [RequestCancelled], [CommandRejected],
// [NotificationRecorded]) are closed sets: their interfaces have unexported
// methods, and every type switch over them ends in a default that refuses the
// unknown case rather than ignoring it. [DecodeCommandBody] and [DecodeEventBody]
// map wire type names back to Go types.
//
// # Invariants
//
// Decide enforces I3 and I4 (docs/architecture.md): a request reaches at most one
// terminal status; the requester never votes on their own request; only the
// approvers in the policy snapshot taken at submission count, each once; and
// the quorum and reject threshold are the snapshot's, never the live policy's.
// Command ids are remembered in the state, so a command that was already
// decided adds nothing and reports its original outcome (I2).
package approval
