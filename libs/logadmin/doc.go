// Package logadmin administers the Kafka cluster and topics Assent runs
// on, with kadm: it is to Assent what kadm is to franz-go.
//
// # Topics
//
// Provision creates missing topics and verifies existing ones against an
// eventlog.TopicSpec; CheckTopics only verifies, and every service calls
// it at start (Connect: a client, then the check, within 30 seconds). A
// difference is returned as a *MismatchError that lists each difference
// and how to fix it. Nothing here ever alters an existing topic.
//
// KRaft brokers learn of a new topic a moment after the controller creates
// it, so one broker may still say a topic does not exist while another
// already serves it. Provision therefore asks the controller first (a
// validate-only create), re-reads until the topics it created are visible
// and verifies them; CheckTopics looks again for two seconds before it
// reports a topic missing.
//
// # Readiness
//
// WaitReady polls until the expected brokers are registered and every
// partition has a leader and a full ISR; scripts/kafka and the test
// helpers use it before trusting the cluster. tools/assent-kafka exposes
// wait, provision, check and describe.
package logadmin
