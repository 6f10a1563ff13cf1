// Package eventlog is Assent's Kafka client: how clients are configured,
// how records carrying wire envelopes are produced and decoded, and which
// topics a service talks to. It is to Assent what kgo is to franz-go; the
// format itself is package wire, and administration (provisioning, topic
// checks, readiness) is package logadmin.
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
// # Records
//
// NewRecord and DecodeRecord put a wire.Envelope on a kgo.Record and take
// it off again; WireRecord converts a kgo.Record for package wire.
// Partitioner sends a keyed record where wire.Partition says, and an
// unkeyed one (a checkpoint) to the partition the record names.
//
// # Topics
//
// TopicSpec names the two topics and their partitions, replication factor
// and min.insync.replicas; DefaultTopicSpec is assent.commands.v1 and
// assent.events.v1, 12 partitions, replication factor 3, min ISR 2. The
// commands topic keeps 7 days; the events topic keeps everything and is
// never compacted. The commands and events topics have the same number of
// partitions: the decider that owns command partition p is the only writer
// of events partition p.
//
// # Testing
//
// Unit tests cover the client options and the codec on records. Component
// tests run on kfake, franz-go's in-process fake cluster. Tests in files
// named *_integration_test.go need the real three-node cluster: they find
// it through test/kafkatest, which skips them when ASSENT_KAFKA_BROKERS is
// unset or unreachable, and fails them instead under CI=true.
package eventlog
