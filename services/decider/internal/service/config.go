package service

import (
	"github.com/assent-dev/assent/libs/projection"
	"time"

	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/tracing"
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
	// Signer signs the seal that ends every transaction's run of records
	// in each partition. Required: readers apply nothing a decider did not
	// sign.
	Signer *wire.Signer
	// Keys are the published decider public keys, with which the
	// decider's own projection authenticates the log.
	Keys *wire.KeyRing
	// ServiceKeys are the published service keys that commands must be
	// signed with (the timers' with Signer, a decider key).
	ServiceKeys *wire.ServiceKeyRing
	// Tracing is read from the standard OTEL_ environment: off unless an
	// OTLP endpoint is set (docs/architecture.md, "Tracing").
	Tracing tracing.Settings
}

// DefaultSessionTimeout is the deciders' group session timeout: how long
// a decider that died (or paused) keeps its partitions before the group
// gives them to another (docs/architecture.md, "Failover"); heartbeats go
// every sixth of it. It is Kafka's floor for a session
// (group.min.session.timeout.ms, 6s), so that a decider joins any cluster.
// The deployments, whose brokers lower that floor to 1s
// (infra/kafka/node.properties.tmpl, infra/k8s/10-kafka.yaml), set
// ASSENT_SESSION_TIMEOUT=1500ms: infra/k8s/31-decider.yaml, scripts/up and
// the fault suite. A decider killed -9 then hands its partitions over
// within about 2.5s.
const DefaultSessionTimeout = 6 * time.Second

const usage = `usage: decider [--help]

The decider consumes the commands topic as a consumer group, decides each
command against the state of its request and the policy file, and writes
the resulting events, chained by hash, together with the consumer offsets
in one Kafka transaction. It also expires requests whose time is up.

Environment:
  ASSENT_KAFKA_BROKERS     comma-separated brokers (required)
  ASSENT_KAFKA_USER        Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE
                           the file holding its password
  ASSENT_INSTANCE_ID       unique name of this replica; names its
                           transactional id (default decider-<host>-<http port>)
  ASSENT_DATA_DIR          Pebble directory (default .run/decider-<instance>)
  ASSENT_HTTP_ADDR         /healthz, /readyz, /metrics (default 127.0.0.1:8181)
  ASSENT_POLICY_FILE       policy YAML (default infra/policies/example.yaml)
  ASSENT_PARTITIONS        partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC    default assent.commands.v1
  ASSENT_EVENTS_TOPIC      default assent.events.v1
  ASSENT_DECIDER_GROUP     consumer group (default assent-decider)
  ASSENT_SESSION_TIMEOUT   group session timeout (default 6s, Kafka's floor;
                           the deployments set 1500ms, which needs the
                           brokers' group.min.session.timeout.ms at 1s)
  ASSENT_TXN_TIMEOUT       transaction timeout (default 10s)
  ASSENT_TXN_RETRY_BACKOFF backoff after CONCURRENT_TRANSACTIONS (default 20ms)
  ASSENT_EXPIRY_PERIOD     how often to look for due expiries (default 250ms)
  ASSENT_SIGNING_KEY_FILE  Ed25519 private key (PKCS #8 PEM) that signs the
                           seal of every transaction (required; the decider
                           refuses to start without it). Demo key, for
                           scripts/up and tests only: infra/keys/demo-decider.key.pem
  ASSENT_SIGNING_KEY_ID    the key id written in each seal, as the published
                           keys file names it (required; demo key: demo-2026-01)
  ASSENT_SEAL_KEYS_FILE    the published decider public keys, with which the
                           decider's projection authenticates the log
                           (default infra/keys/decider-keys.json); the timers'
                           expire commands are signed with the seal key
  ASSENT_SERVICE_KEYS_FILE the published service keys: a command is decided
                           only if one that may speak for its actor signed
                           it; any other is refused unauthenticated
                           (default infra/keys/service-keys.json)
  ASSENT_LOG_LEVEL         debug, info, warn, error (default info)
  ASSENT_KAFKA_LOG_LEVEL   franz-go's own log, into the same output: none,
                           error, warn, info, debug (default none); info
                           says where a failover's seconds go

` + tracing.EnvHelp

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
		SessionTTL:      env.Duration("ASSENT_SESSION_TIMEOUT", DefaultSessionTimeout),
		TxnTimeout:      env.Duration("ASSENT_TXN_TIMEOUT", 10*time.Second),
		TxnRetryBackoff: env.Duration("ASSENT_TXN_RETRY_BACKOFF", 20*time.Millisecond),
		ExpiryPeriod:    env.Duration("ASSENT_EXPIRY_PERIOD", 250*time.Millisecond),
	}
	env.Add(kerr, terr)
	keyFile, keyID := env.String("ASSENT_SIGNING_KEY_FILE", ""), env.String("ASSENT_SIGNING_KEY_ID", "")
	switch {
	case keyFile == "" || keyID == "":
		env.Problem("ASSENT_SIGNING_KEY_FILE and ASSENT_SIGNING_KEY_ID are required: every transaction is sealed with this key, " +
			"and readers apply nothing it does not sign (infra/keys/README.md says how to make one; the demo key is for scripts/up and tests only)")
	default:
		var err error
		cfg.Signer, err = wire.LoadSigner(keyID, keyFile)
		env.Add(err)
	}
	for _, old := range []string{"ASSENT_CHECKPOINT_KEY_FILE", "ASSENT_CHECKPOINT_KEY_ID", "ASSENT_CHECKPOINT_INTERVAL"} {
		if getenv(old) != "" {
			env.Problem("%s is gone: checkpoints became the seal of every transaction; set ASSENT_SIGNING_KEY_FILE and ASSENT_SIGNING_KEY_ID", old)
		}
	}
	keys, err := projection.LoadKeys(getenv)
	env.Add(err)
	cfg.Keys = keys
	cfg.ServiceKeys, err = wire.LoadServiceKeyRing(env.String("ASSENT_SERVICE_KEYS_FILE", "infra/keys/service-keys.json"))
	if err != nil {
		env.Problem("ASSENT_SERVICE_KEYS_FILE: %v (the published service keys: the decider decides only commands they sign; infra/keys/README.md)", err)
	}
	tr, trerr := tracing.FromEnv(getenv)
	env.Add(trerr)
	cfg.Tracing = tr
	cfg.Instance = env.Instance("decider", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	return cfg, env.Err()
}
