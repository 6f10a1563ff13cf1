// Package wire is the format of Assent's log, with the standard library
// alone: what a record on the commands and events topics looks like, how
// records are named, keyed and chained, and how the chain is signed. It is
// to Assent what kmsg is to franz-go: no client, no I/O, no clock (every
// time is passed in), so any reader of the log, in any runtime, can check
// its rules against this package and its tests.
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
// ErrInvalidEnvelope. DecodeRecord checks a Record's content-type header
// and key before it unmarshals the value.
//
// Ids come from NewID, a UUIDv7 for a time the caller passes in;
// DerivedID names a command after what identifies it, so that a retry is
// the same command.
//
// # Keys and partitions
//
// The record key is the subject, the request id, so that everything about
// one request is in one partition and in order. Partition reproduces the
// Java producer's choice, toPositive(murmur2(key)) % n, so Java and Go
// producers agree; it is tested against Kafka's own murmur2 vectors.
//
// # Hash chain and seals
//
// Each event's prevhash is Hash of the previous authenticated record value
// in its events partition: "sha256:" and the hex SHA-256 of the exact
// stored bytes. The first event of a partition uses GenesisHash. Chain
// writes the links.
//
// Every decider transaction ends the run of records it wrote to a
// partition with a Seal, signed with Ed25519 (Signer) over the run: from
// the head it extended to the hash of its last record, and how many. A
// reader applies only what a valid seal covers: Authenticator holds a
// transaction's records until its seal arrives, walks back from the
// seal's head by hash, and rejects whatever no seal can cover (a record
// written outside a transaction, a transaction without a seal, a run a
// seal passes over, a seal signed by an unknown key or replayed). The
// public keys (KeyRing) are published in infra/keys.
//
// See docs/architecture.md for the invariants these rules serve.
package wire
