// Package eventlog is Assent's contract with Kafka: the message format on
// the commands and events topics, how records are keyed and partitioned,
// how clients are configured, and how the topics are provisioned and
// checked. Every service that reads or writes Kafka goes through it, so that
// these rules are written down once.
//
// It knows nothing about approvals. Command and event types, and what their
// data means, belong to the domain; eventlog moves envelopes.
//
// # Message format
//
// Every record value is one CloudEvents 1.0 event in structured JSON mode,
// with the record header "content-type: application/cloudevents+json".
// Envelope holds the attributes Assent uses: the required specversion, id,
// source, type and time; subject (the request id); and the lowercase
// extensions actor, commandid, sequence and prevhash. Marshal and Unmarshal
// validate the same rules both ways, so whatever Marshal writes, Unmarshal
// reads back. Unmarshal is strict about Assent's attributes but tolerates
// unknown extension attributes, as CloudEvents requires; it drops them.
// Times are RFC 3339 in UTC ("Z") on the wire. Errors wrap
// ErrInvalidEnvelope.
//
// NewRecord and DecodeRecord put an Envelope on a kgo.Record and take it off
// again. Ids come from NewID, a UUIDv7 for a time the caller passes in:
// nothing in this package reads the clock.
//
// # Keys and partitions
//
// The record key is the subject, the request id, so that everything about
// one request is in one partition and in order. Partition reproduces the
// Java producer's choice, toPositive(murmur2(key)) % n, so Java and Go
// producers agree; it is tested against Kafka's own murmur2 vectors and
// against where franz-go's records land on a real cluster. Partitioner is
// the kgo partitioner built on it; an unkeyed record (a checkpoint) goes to
// the partition the record names.
//
// The commands and events topics have the same number of partitions: the
// decider that owns command partition p is the only writer of events
// partition p.
//
// # Hash chain
//
// Each event's prevhash is Hash of the previous record value in its events
// partition: "sha256:" and the hex SHA-256 of the exact stored bytes. The
// first event of a partition uses GenesisHash. Keeping the head of each
// chain, and rolling it back when a transaction aborts, is the decider's
// job.
//
// # Clients
//
// NewClient (or Config.Opts, for kgo.NewGroupTransactSession) builds a
// franz-go client with the guarantees Assent rests on: acks=all, idempotent
// writes, read_committed fetches and the Java-compatible partitioner, plus a
// short 2ms linger and bounded dial and delivery timeouts. Options passed
// by the caller cannot weaken the guarantees, and CheckClient verifies them
// on any client. ConfigFromEnv reads ASSENT_KAFKA_BROKERS.
//
// # Topics
//
// TopicSpec names the two topics and their partitions, replication factor
// and min.insync.replicas; DefaultTopicSpec is assent.commands.v1 and
// assent.events.v1, 12 partitions, replication factor 3, min ISR 2. The
// commands topic keeps 7 days; the events topic keeps everything and is
// never compacted. Provision creates missing topics and verifies existing
// ones; CheckTopics only verifies, and every service calls it at start. A
// difference is returned as a *MismatchError that lists each difference and
// how to fix it. Nothing here ever alters an existing topic.
//
// KRaft brokers learn of a new topic a moment after the controller creates
// it, so one broker may still say a topic does not exist while another
// already serves it. Provision therefore re-reads until the topics it
// created are visible and verifies them; CheckTopics looks again for two
// seconds before it reports a topic missing.
//
// # Readiness
//
// WaitReady polls until the expected brokers are registered and every
// partition has a leader and a full ISR; scripts/kafka and the test
// helpers use it before trusting the cluster. The assent-kafka command (in
// cmd/assent-kafka) exposes wait, provision, check and describe.
//
// # Testing
//
// Unit tests cover the codec, ids, hashes and murmur2. Component tests run
// on kfake, franz-go's in-process fake cluster. Tests in files named
// *_integration_test.go need the real three-node cluster: they find it
// through the kafkatest package, which skips them when ASSENT_KAFKA_BROKERS
// is unset or unreachable, and fails them instead under CI=true.
package eventlog
