package decider

import (
	"errors"
	"fmt"
	"time"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/service"
)

// Config is the decider's configuration, read from ASSENT_* variables.
type Config struct {
	Kafka           eventlog.Config
	Topics          eventlog.TopicSpec
	Group           string
	Instance        string // unique per replica; names the transactional id
	DataDir         string
	HTTPAddr        string
	PolicyFile      string
	LogLevel        string
	SessionTTL      time.Duration // consumer group session timeout: how fast a dead replica's partitions move
	TxnTimeout      time.Duration // how long a zombie's open transaction can block a partition
	TxnRetryBackoff time.Duration // backoff on CONCURRENT_TRANSACTIONS
	ExpiryPeriod    time.Duration // how often due expiries are looked for
}

const usage = `usage: decider [--help]

The decider consumes the commands topic as a consumer group, decides each
command against the state of its request and the policy file, and writes
the resulting events, chained by hash, together with the consumer offsets
in one Kafka transaction. It also expires requests whose time is up.

Environment:
  ASSENT_KAFKA_BROKERS     comma-separated brokers (required)
  ASSENT_INSTANCE_ID       unique name of this replica; names its
                           transactional id (default decider-<host>-<http port>)
  ASSENT_DATA_DIR          Pebble directory (default .run/decider-<instance>)
  ASSENT_HTTP_ADDR         /healthz, /readyz, /metrics (default 127.0.0.1:8181)
  ASSENT_POLICY_FILE       policy YAML (default infra/policies/example.yaml)
  ASSENT_PARTITIONS        partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC    default assent.commands.v1
  ASSENT_EVENTS_TOPIC      default assent.events.v1
  ASSENT_DECIDER_GROUP     consumer group (default assent-decider)
  ASSENT_SESSION_TIMEOUT   group session timeout (default 6s)
  ASSENT_TXN_TIMEOUT       transaction timeout (default 10s)
  ASSENT_TXN_RETRY_BACKOFF backoff after CONCURRENT_TRANSACTIONS (default 20ms)
  ASSENT_EXPIRY_PERIOD     how often to look for due expiries (default 250ms)
  ASSENT_LOG_LEVEL         debug, info, warn, error (default info)
`

// LoadConfig reads the configuration and reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	env := service.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	topics, terr := eventlog.TopicSpecFromEnv(getenv)
	cfg := Config{
		Kafka:           kafka,
		Topics:          topics,
		Group:           env.String("ASSENT_DECIDER_GROUP", "assent-decider"),
		HTTPAddr:        env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8181"),
		PolicyFile:      env.String("ASSENT_POLICY_FILE", "infra/policies/example.yaml"),
		LogLevel:        env.String("ASSENT_LOG_LEVEL", "info"),
		SessionTTL:      env.Duration("ASSENT_SESSION_TIMEOUT", 6*time.Second),
		TxnTimeout:      env.Duration("ASSENT_TXN_TIMEOUT", 10*time.Second),
		TxnRetryBackoff: env.Duration("ASSENT_TXN_RETRY_BACKOFF", 20*time.Millisecond),
		ExpiryPeriod:    env.Duration("ASSENT_EXPIRY_PERIOD", 250*time.Millisecond),
	}
	cfg.Instance = env.Instance("decider", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	if err := errors.Join(kerr, terr, env.Err()); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}
