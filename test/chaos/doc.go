// Package chaos is Assent's fault-injection suite, in the spirit of Jepsen
// and of Kafka's exactly-once system tests: it runs the system (its own
// Kafka cluster in network namespaces, three brokers and three dedicated
// controllers, two replicas of every
// service), drives a recorded workload through it while a nemesis injects
// faults, then reads the whole log back and checks it.
//
// # Parts
//
//   - [Workload] runs concurrent clients over the API and the Slack
//     gateways and records every [Op]: invocation, completion, outcome
//     (ok, refused with a reason, accepted without an outcome, unknown).
//   - [Nemesis] injects one fault at a time: kill -9 of a decider, an api
//     or a gateway replica; SIGSTOP of a decider past its session timeout;
//     kill -9 of a Kafka node; a Kafka node cut off from its peers
//     ([Cluster.Partition]); a rolling restart; an [Insider] that appends
//     forged decisions to the events topic with the Kafka admin's
//     credentials.
//   - [Check] proves I1-I6 over the log (with test/systest), that nothing
//     a client was told contradicts it, that each api replica equals a
//     fold of it (I5), that each request's history is linearizable
//     (porcupine, with unknown outcomes possibly taking effect), that no
//     replica's view goes backwards, and that the security negatives were
//     refused and left no trace, all over the authenticated log
//     ([Authenticated]); and that no forgery was ever served, to a client
//     or in a replica's view. Every [Anomaly] names the request, the
//     partition and the offsets.
//   - [Execute] does a whole run; [Run.WriteReport] prints the report.
//
// scripts/chaos runs the full version (tools/assent-chaos), and
// TestIntegrationChaos a bounded one in scripts/test. README.md has the
// details, including what the kernel supports for the partition.
package chaos
