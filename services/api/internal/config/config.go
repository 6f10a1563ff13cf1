// Package config reads the api service's configuration from ASSENT_*
// environment variables and documents every one of them in Usage.
package config

import (
	"net"
	"time"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Config is the api service's configuration.
type Config struct {
	Kafka      eventlog.Config
	Topics     eventlog.TopicSpec
	HTTPAddr   string
	Instance   string // unique per replica; names the Kafka client and the data dir
	DataDir    string // the Pebble projection; a cache of the events topic
	TokensFile string
	WriteWait  time.Duration // how long a write waits for its outcome before 202
	MaxBody    int64         // bytes
	LogLevel   string
	// WriteRate is the writes per second each principal may make on this
	// replica (0: no limit), in bursts of WriteBurst.
	WriteRate  int
	WriteBurst int
	// MaxLongPolls is how many long polls the replica holds at once;
	// MaxLongPollsPerPrincipal how many of them one principal may hold.
	MaxLongPolls             int
	MaxLongPollsPerPrincipal int
	// Keys are the published decider public keys: the projection applies
	// only what they sign.
	Keys *wire.KeyRing
	// CommandKey signs every command the api produces; it speaks as
	// service:api, with the on_behalf role.
	CommandKey *wire.Signer

	// Listener, if set, is used instead of listening on HTTPAddr (tests
	// listen on port 0 and need to know the port). It is not read from the
	// environment.
	Listener net.Listener
}

// Usage is printed by --help and after a configuration error.
const Usage = `usage: api [--help]
       api hash-token <token | ->

The api service is Assent's HTTP API v1 for backend services. A write
(submit, vote, cancel) produces a command to the commands topic with
acks=all and waits, for a bounded time, until its outcome appears in the
service's own projection of the events topic. Reads are served from that
projection, which covers every events partition, so any replica answers
any request.

hash-token prints the line to put in the tokens file for a bearer token
("-" reads the token from standard input, which keeps it out of the shell
history and the process list).

Environment:
  ASSENT_KAFKA_BROKERS     comma-separated brokers (required)
  ASSENT_KAFKA_USER        Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE
                           the file holding its password
  ASSENT_KAFKA_LINGER      producer linger, a Go duration (default 2ms; 0 = none)
  ASSENT_HTTP_ADDR         listen address (default 127.0.0.1:8080)
  ASSENT_INSTANCE_ID       unique name of this replica
                           (default api-<host>-<http port>)
  ASSENT_DATA_DIR          Pebble projection directory; a cache that can be
                           deleted at any time (default .run/<instance>)
  ASSENT_TOKENS_FILE       bearer tokens, stored as SHA-256 hashes
                           (default infra/tokens/demo-tokens.yaml)
  ASSENT_PARTITIONS        partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC    default assent.commands.v1
  ASSENT_EVENTS_TOPIC      default assent.events.v1
  ASSENT_WRITE_WAIT        how long a write waits for its outcome before it
                           answers 202 Accepted (default 5s)
  ASSENT_MAX_BODY          largest request body in bytes (default 65536)
  ASSENT_WRITE_RATE        writes per second each principal may make on this
                           replica; over it, writes answer 429 rate_limited
                           with Retry-After (default 200; 0 = no limit)
  ASSENT_WRITE_BURST       writes a principal may make at once above the rate
                           (default twice ASSENT_WRITE_RATE)
  ASSENT_MAX_LONG_POLLS    long polls (GET ?wait=) this replica holds at once;
                           over it, long polls answer 503 with Retry-After
                           (default 4096)
  ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL  long polls one principal may hold on
                           this replica; over it, 429 rate_limited with
                           Retry-After (default 1024)
  ASSENT_SEAL_KEYS_FILE    the published decider public keys; only records a
                           seal signed with one of them covers are applied
                           (default infra/keys/decider-keys.json)
  ASSENT_COMMAND_KEY_FILE  Ed25519 private key (PKCS #8 PEM) that signs every
                           command this service produces (required: the decider
                           refuses unsigned commands). Demo key, for scripts/up
                           and tests only: infra/keys/demo-api.key.pem
  ASSENT_COMMAND_KEY_ID    its key id in infra/keys/service-keys.json, which
                           names the principal it speaks as (required; demo
                           key: demo-api-2026-01)
  ASSENT_LOG_LEVEL         debug, info, warn, error (default info)
`

// Load reads the configuration and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	env := daemon.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	topics, terr := eventlog.TopicSpecFromEnv(getenv)
	keys, kerrs := projection.LoadKeys(getenv)
	env.Add(kerrs)
	signer, serr := command.LoadSigner(getenv)
	env.Add(serr)
	cfg := Config{
		Keys:       keys,
		CommandKey: signer,
		Kafka:      kafka,
		Topics:     topics,
		HTTPAddr:   env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8080"),
		TokensFile: env.String("ASSENT_TOKENS_FILE", "infra/tokens/demo-tokens.yaml"),
		WriteWait:  env.Duration("ASSENT_WRITE_WAIT", 5*time.Second),
		MaxBody:    int64(env.Int("ASSENT_MAX_BODY", 64<<10, 1<<10, 16<<20)),
		LogLevel:   env.String("ASSENT_LOG_LEVEL", "info"),
	}
	cfg.WriteRate = env.Int("ASSENT_WRITE_RATE", 200, 0, 1_000_000)
	cfg.WriteBurst = env.Int("ASSENT_WRITE_BURST", max(1, 2*cfg.WriteRate), 1, 2_000_000)
	cfg.MaxLongPolls = env.Int("ASSENT_MAX_LONG_POLLS", 4096, 1, 1_000_000)
	cfg.MaxLongPollsPerPrincipal = env.Int("ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL", min(1024, cfg.MaxLongPolls), 1, 1_000_000)
	if cfg.MaxLongPollsPerPrincipal > cfg.MaxLongPolls {
		env.Problem("ASSENT_MAX_LONG_POLLS_PER_PRINCIPAL (%d) must not exceed ASSENT_MAX_LONG_POLLS (%d)", cfg.MaxLongPollsPerPrincipal, cfg.MaxLongPolls)
	}
	cfg.Instance = env.Instance("api", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	env.Add(kerr, terr)
	if cfg.WriteWait <= 0 {
		env.Problem("ASSENT_WRITE_WAIT must be positive")
	}
	return cfg, env.Err()
}
