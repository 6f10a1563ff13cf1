// Package service wires the decider together: configuration, the Kafka
// client and topic check, the projection of the events topic (Pebble, with
// the requests handler), the Kafka-free core (package core) and the
// transactional session around it (package session), and the HTTP probes
// and metrics, run as one errgroup until the context ends.
package service

// Source is the CloudEvents source of every event the decider writes.
const Source = "assent/decider"
