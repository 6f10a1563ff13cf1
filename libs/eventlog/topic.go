package eventlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Topic configuration keys that provisioning sets and checks.
const (
	ConfigMinInsyncReplicas = "min.insync.replicas"
	ConfigRetentionMs       = "retention.ms"
	ConfigRetentionBytes    = "retention.bytes"
	ConfigCleanupPolicy     = "cleanup.policy"
)

// CommandsRetentionMs is the commands topic's retention: 7 days. A command
// is decided within seconds; the week is for investigating incidents.
const CommandsRetentionMs = 7 * 24 * 60 * 60 * 1000

// TopicSpec describes the two topics every service relies on.
type TopicSpec struct {
	Commands          string // the commands topic name
	Events            string // the events topic name
	Partitions        int32  // partitions of each topic; they must be equal
	ReplicationFactor int16
	MinInsyncReplicas int
}

// DefaultTopicSpec is the production layout: assent.commands.v1 and
// assent.events.v1, 12 partitions each, replication factor 3,
// min.insync.replicas 2.
func DefaultTopicSpec() TopicSpec {
	return TopicSpec{
		Commands:          "assent.commands.v1",
		Events:            "assent.events.v1",
		Partitions:        12,
		ReplicationFactor: 3,
		MinInsyncReplicas: 2,
	}
}

// Validate reports whether the spec itself is usable.
func (s TopicSpec) Validate() error {
	switch {
	case s.Commands == "" || s.Events == "":
		return errors.New("eventlog: topic spec: both topic names are required")
	case s.Commands == s.Events:
		return fmt.Errorf("eventlog: topic spec: commands and events are both %q", s.Commands)
	case s.Partitions < 1:
		return fmt.Errorf("eventlog: topic spec: partitions = %d, want at least 1", s.Partitions)
	case s.ReplicationFactor < 1:
		return fmt.Errorf("eventlog: topic spec: replication factor = %d, want at least 1", s.ReplicationFactor)
	case s.MinInsyncReplicas < 1 || s.MinInsyncReplicas > int(s.ReplicationFactor):
		return fmt.Errorf("eventlog: topic spec: min.insync.replicas = %d, want 1..%d (the replication factor)", s.MinInsyncReplicas, s.ReplicationFactor)
	}
	return nil
}

// Configs returns the topic configuration each topic is created with and
// checked against, by topic name.
//
// Both topics delete, never compact: compaction would drop events and
// break the hash chain. The events topic keeps everything, by time
// (retention.ms=-1) and by size (retention.bytes=-1, explicitly, so that a
// broker-wide log.retention.bytes cannot age the audit trail out).
func (s TopicSpec) Configs() map[string]map[string]string {
	minISR := strconv.Itoa(s.MinInsyncReplicas)
	return map[string]map[string]string{
		s.Commands: {
			ConfigMinInsyncReplicas: minISR,
			ConfigRetentionMs:       strconv.Itoa(CommandsRetentionMs),
			ConfigCleanupPolicy:     "delete",
		},
		s.Events: {
			ConfigMinInsyncReplicas: minISR,
			ConfigRetentionMs:       "-1",
			ConfigRetentionBytes:    "-1",
			ConfigCleanupPolicy:     "delete",
		},
	}
}

// Environment variables read by TopicSpecFromEnv.
const (
	EnvPartitions    = "ASSENT_PARTITIONS"
	EnvCommandsTopic = "ASSENT_COMMANDS_TOPIC"
	EnvEventsTopic   = "ASSENT_EVENTS_TOPIC"
)

// TopicSpecFromEnv is DefaultTopicSpec with ASSENT_PARTITIONS (1 to 10000),
// ASSENT_COMMANDS_TOPIC and ASSENT_EVENTS_TOPIC applied: the topic settings
// every service reads the same way.
func TopicSpecFromEnv(getenv func(string) string) (TopicSpec, error) {
	spec := DefaultTopicSpec()
	if v := strings.TrimSpace(getenv(EnvPartitions)); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 || n > 10000 {
			return spec, fmt.Errorf("eventlog: %s=%q must be a whole number from 1 to 10000", EnvPartitions, v)
		}
		spec.Partitions = int32(n)
	}
	if v := strings.TrimSpace(getenv(EnvCommandsTopic)); v != "" {
		spec.Commands = v
	}
	if v := strings.TrimSpace(getenv(EnvEventsTopic)); v != "" {
		spec.Events = v
	}
	return spec, nil
}
