// Package assent is the Go SDK of Assent, for backend services that must
// ask "may this action happen now?" before a production deploy, a write to
// a live database, a config change or a grant of admin access.
//
// It speaks HTTP API v1 (schemas/openapi.yaml) and depends only on the
// standard library. Services that prefer to produce commands straight to
// Kafka use the subpackage github.com/assent-dev/assent/libs/assentkafka,
// which returns the same Decision and *Problem types.
//
// # Asking for approval
//
//	client, err := assent.New([]string{"https://assent-1.internal", "https://assent-2.internal"}, token)
//	...
//	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
//	defer cancel()
//	d, err := client.RequestApproval(ctx, assent.SubmitRequest{
//		Action: assent.Action{Type: "deploy", Resource: "services/billing/api", Environment: "production"},
//		Reason: "release 1.4.2",
//	})
//	if err != nil || !d.Approved {
//		return fmt.Errorf("deploy not approved: %v %v", d.Status, err)
//	}
//
// Only Decision.Approved == true means go ahead. A rejected, expired or
// cancelled request is a Decision with Approved false and no error. A
// refusal is an error, a *Problem. A context that ends first is an error
// wrapping ErrPending: the request is still open, and the caller must not
// proceed.
//
// # Calls
//
// Client has one method per operation of the API: Submit, Get and GetWait
// (long poll), Vote, Cancel, List (with ListPages and ListAll iterating
// over the cursor), and Events (the request's history exactly as stored,
// with Hash for checking the chain). Writes answer when their outcome
// appeared in the API's projection; if it did not appear within the
// server's write wait (5s by default) they answer 202, which the client
// returns as a view with Status StatusAccepted: the command is durable in
// Kafka and will be decided.
//
// # Errors
//
// Every error response is an RFC 9457 problem, returned as a *Problem whose
// Code is the stable reason code. Branch on the code, never on the text:
//
//	var p *assent.Problem
//	switch {
//	case assent.IsCode(err, assent.CodeNoPolicy): // no rule covers this action
//	case errors.As(err, &p): // any other refusal or an HTTP failure
//	}
//
// Network failures and exhausted retries are returned wrapped, with the
// last failure in the chain; context errors are wrapped as well, so
// errors.Is(err, context.DeadlineExceeded) works. A write given up while
// its outcome is unknown is an *OutcomeUnknownError (see "Outcome
// unknown" below). CodeIdempotencyKeyReused (422) says an Idempotency-Key
// was reused for a vote or cancel of another body: a bug in the caller.
//
// # Retries
//
// Every call is safe to retry, and the client retries it: on connection
// errors, on 502, 503 and 504, and on 408 and 429 (waiting as long as
// Retry-After says), with capped exponential backoff and jitter, up to
// WithMaxAttempts attempts, and never past the context's deadline. It
// never retries another 4xx: that is an answer, and a retry would only get
// it again. With several base URLs it fails over to the next replica at
// once when one fails, and backs off only when every replica has failed
// since the last pause.
//
// The retries are safe because every write is idempotent:
//
//   - a submit always carries a request_id, the caller's or a UUIDv7 the
//     client generates, so a retried submit is an identical resubmit, which
//     the API answers with the request as it stands;
//   - every write (submit, vote, cancel) carries an Idempotency-Key header
//     that is the same for every attempt of one call, so a retry names the
//     same command and the server reports its original outcome instead of
//     deciding twice. If a retry is nonetheless refused as a duplicate
//     after an attempt whose answer was lost, the client checks the
//     request before it calls that a success (see Client.Vote).
//
// # Outcome unknown
//
// A 503 with CodeOutcomeUnknown says Kafka did not acknowledge the write's
// command, which may be in the log all the same. The client retries it as
// above, and counts it, like a 502, a 504, any other 503 (but
// CodeWritesUnavailable: the replica could not reach Kafka and sent
// nothing) or a connection lost after sending, as an attempt that may
// have taken effect. If it
// gives up (attempts or context spent) after such an attempt, the error is
// an *OutcomeUnknownError: the write may or may not have happened. Repeat
// it with the error's RequestID and IdempotencyKey, which name the same
// command; a call with new ones could be a second request:
//
//	v, err := client.Submit(ctx, req)
//	var u *assent.OutcomeUnknownError
//	if errors.As(err, &u) {
//		req.RequestID, req.IdempotencyKey = u.RequestID, u.IdempotencyKey
//		v, err = client.Submit(ctx, req) // the same command, decided at most once
//	}
//
// # Testing
//
// Unit tests run the client against httptest servers. The Kafka
// transport's tests, in files named *_integration_test.go, run against the
// real cluster named by ASSENT_KAFKA_BROKERS with two deciders.
package assent
