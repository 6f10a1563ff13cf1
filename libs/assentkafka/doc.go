// Package assentkafka is the Kafka transport of the Assent Go SDK: it
// asks for approval by producing commands straight to the commands topic
// and learns the decision by reading the events topic, with no HTTP and no
// api service in between. It returns the SDK's own types: an
// assent.Decision, and refusals as *assent.Problem with their reason code.
//
// It lives in its own package so that services that only use HTTP do not
// import franz-go through the SDK.
//
//	keys, _ := wire.LoadKeyRing("infra/keys/decider-keys.json") // the published decider keys
//	key, _ := wire.LoadSigner("billing-2026-07", "/secure/billing.pem") // published in service-keys.json
//	tr, err := assentkafka.New(eventlog.Config{Brokers: brokers}, eventlog.DefaultTopicSpec(), "service:billing",
//		assentkafka.WithKeys(keys), assentkafka.WithCommandKey(key))
//	...
//	defer tr.Close()
//	d, err := tr.RequestApproval(ctx, assent.SubmitRequest{...})
//	if err != nil || !d.Approved {
//		return errors.New("not approved")
//	}
//
// # Security: the command key names the actor
//
// The HTTP API maps a bearer token to a principal. Here every command is
// signed with the backend's command key (WithCommandKey), and the
// published service keys file (infra/keys/service-keys.json) says which
// principal that key speaks as. The decider refuses, as unauthenticated,
// a command that is unsigned, signed by a key that is not published (or
// not valid at the command's time), or that names another actor or
// requester than the key's principal: only the api, the Slack gateway and
// the console have the on_behalf role (docs/architecture.md,
// "Authenticated commands"). So Write on the commands topic no longer
// lets a backend act as anyone else. Reading the decision needs Read on
// the events topic, which holds every request of every service: grant it
// accordingly, or use the HTTP API.
//
// # Writing
//
// Submit, Vote and Cancel produce one CloudEvents command, keyed by the
// request id, on the eventlog client: acks=all, idempotent, the
// Java-compatible partitioner. Each returns once Kafka acknowledged the
// record, so the command is durable and will be decided (I1).
//
// Command ids are derived, not random: a submit's from the principal, the
// request id and the content hash; a vote's and a cancel's from the
// principal, the request id and what they say. A retried call, from this
// process or another, is therefore the same command, which the decider
// decides at most once (I2) and whose original outcome it keeps. A submit
// of the same request id with other content is a different command, and
// the decider refuses it with conflict; a wait never mistakes the other
// content's decision for its own.
//
// Commands the domain would refuse as invalid whatever the state (an
// empty reason, a bad request id) are refused before anything is
// produced.
//
// # Reading
//
// A request's events are all in one partition of the events topic, the
// one wire.Partition gives for its id. A wait consumes only that
// partition, with read_committed, so it sees only events of committed
// decider transactions, and folds the request's events with
// approval.Evolve, exactly as every projection does.
//
// Before producing, Submit lists the partition's last stable offset, and
// WaitFor reads from there rather than from the start, so that it does not
// scan the partition's history. It reads from the start instead when that
// cannot see the whole request: when the first event of the request it
// meets is not the request's first, or when it has read to the end and,
// for WithRescanAfter, seen no trace of the submit (the same submit was
// decided before, by an earlier attempt). Wait, which knows only a request
// id, always reads from the start.
//
// # Testing
//
// The component tests run on kfake with a fake decider made of the pure
// domain. The integration tests (*_integration_test.go) run two real
// deciders, built from this checkout, on the real cluster.
package assentkafka
