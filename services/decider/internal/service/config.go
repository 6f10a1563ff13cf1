package service

import (
	"time"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
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
	// Signer signs checkpoints; nil writes none.
	Signer *wire.Signer
	// CheckpointInterval is how often a partition with new events gets a
	// signed checkpoint.
	CheckpointInterval time.Duration
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
  ASSENT_CHECKPOINT_KEY_FILE  Ed25519 private key (PKCS #8 PEM) that signs
                           checkpoints; unset: no checkpoints (a warning at
                           start). Demo key: infra/keys/demo-checkpoint.key.pem
  ASSENT_CHECKPOINT_KEY_ID the key id written in each checkpoint; required
                           with the key file (demo key: demo-2026-01)
  ASSENT_CHECKPOINT_INTERVAL  how often each partition with new events gets
                           a signed checkpoint (default 30s)
  ASSENT_LOG_LEVEL         debug, info, warn, error (default info)
`

// LoadConfig reads the configuration and reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	env := daemon.NewEnv(getenv)
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

		CheckpointInterval: env.Duration("ASSENT_CHECKPOINT_INTERVAL", 30*time.Second),
	}
	env.Add(kerr, terr)
	keyFile, keyID := env.String("ASSENT_CHECKPOINT_KEY_FILE", ""), env.String("ASSENT_CHECKPOINT_KEY_ID", "")
	switch {
	case keyFile != "" && keyID == "":
		env.Problem("ASSENT_CHECKPOINT_KEY_ID is required with ASSENT_CHECKPOINT_KEY_FILE: name the key as the published public keys file does")
	case keyFile == "" && keyID != "":
		env.Problem("ASSENT_CHECKPOINT_KEY_ID is set but ASSENT_CHECKPOINT_KEY_FILE is not: give the private key file")
	case keyFile != "":
		var err error
		cfg.Signer, err = wire.LoadSigner(keyID, keyFile)
		env.Add(err)
	}
	if cfg.CheckpointInterval <= 0 {
		env.Problem("ASSENT_CHECKPOINT_INTERVAL must be positive")
	}
	cfg.Instance = env.Instance("decider", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	return cfg, env.Err()
}
