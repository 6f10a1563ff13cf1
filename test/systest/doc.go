// Package systest runs Assent as a system and judges the result: it
// builds and starts service processes, kills them, reads the whole event
// log back and checks the invariants of docs/architecture.md against it.
//
// # The checker
//
// [ReadLog] reads every partition of the events topic with read_committed.
// [Check] then proves, from the log alone and the list of commands that
// clients were told had been accepted:
//
//   - I1: every acknowledged command has an outcome in the log;
//   - I2: no command id produced the same event type twice for a request;
//   - I3: a request has at most one terminal event, and after it only
//     command.rejected and notification.recorded;
//   - I4: no vote by the requester, by a principal outside the snapshot,
//     or twice by the same principal, was recorded;
//   - sequences are gapless per request, from 1;
//   - I6 (links): each event's prevhash is the hash of the record before
//     it in its partition.
//
// Every anomaly names the request, the partition and the offset.
//
// # Forgeries
//
// TestIntegrationForgeriesAreNeverServed plays the insider of issue 12: with
// the broker-admin credentials it writes each kind of forged record (a plain
// producer, another transactional id, a seal by an unknown key, an old seal
// replayed, a copy from another partition, a reordered pair, a command that
// names another principal) into a running system, and proves that no api
// replica ever serves it, that every reader counts it, that `auditor verify`
// exits 2 naming its offset, and that the decider goes on deciding. It
// prints the FORGERY TABLE and writes it to $ASSENT_ARTIFACTS_DIR.
package systest
