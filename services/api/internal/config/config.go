// Package config reads the api service's configuration from ASSENT_*
// environment variables and documents every one of them in Usage.
package config

import (
	"net"
	"os"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/tracing"
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

	// Snapshots (docs/architecture.md, "Bootstrap from a snapshot"):
	// BootstrapFrom is a directory or an http(s) URL of a snapshot that a
	// replica without a store starts from, fetched within
	// BootstrapTimeout and at most BootstrapMaxBytes; SnapshotAddr, if
	// set, is where this replica serves its own snapshots to its peers,
	// a new one every SnapshotInterval. SnapshotToken, read from
	// ASSENT_SNAPSHOT_TOKEN_FILE, is the bearer token of both.
	BootstrapFrom     string
	BootstrapTimeout  time.Duration
	BootstrapMaxBytes int64
	SnapshotAddr      string
	SnapshotInterval  time.Duration
	SnapshotToken     string

	// Tracing is read from the standard OTEL_ environment: off unless an
	// OTLP endpoint is set (docs/architecture.md, "Tracing").
	Tracing tracing.Settings

	// Listener, if set, is used instead of listening on HTTPAddr (tests
	// listen on port 0 and need to know the port). SnapshotListener is
	// the same for SnapshotAddr. They are not read from the environment.
	Listener         net.Listener
	SnapshotListener net.Listener
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

Snapshots (a new replica starts from a peer's store instead of reading the
whole events topic; docs/architecture.md, "Bootstrap from a snapshot"):
  ASSENT_BOOTSTRAP_FROM    where a replica whose ASSENT_DATA_DIR holds no store
                           fetches a snapshot: a peer's snapshot URL
                           (http://peer:8090/snapshot), a copy of one under an
                           http(s) URL (object storage), or a directory. It is
                           checked against the cluster, the topic and the
                           authenticated log before use; if anything is wrong
                           the replica logs why and rebuilds from the log
                           (default none: always rebuild)
  ASSENT_BOOTSTRAP_TIMEOUT the longest a bootstrap may take, download and
                           checks included, before the replica gives up and
                           rebuilds from the log (default 10m)
  ASSENT_BOOTSTRAP_MAX_BYTES  the largest snapshot accepted, in bytes
                           (default 68719476736, 64 GiB)
  ASSENT_SNAPSHOT_ADDR     listen address where this replica serves snapshots
                           of its store to its peers, at /snapshot (default
                           none: not served). Keep it off the public network:
                           a snapshot holds every request
  ASSENT_SNAPSHOT_INTERVAL how often a new snapshot is taken to serve (default
                           10m)
  ASSENT_SNAPSHOT_TOKEN_FILE  the bearer token a peer must send for a snapshot
                           (required with ASSENT_SNAPSHOT_ADDR), and that this
                           replica sends to ASSENT_BOOTSTRAP_FROM

` + tracing.EnvHelp

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
	cfg.BootstrapFrom = env.String("ASSENT_BOOTSTRAP_FROM", "")
	cfg.BootstrapTimeout = env.Duration("ASSENT_BOOTSTRAP_TIMEOUT", projection.DefaultBootstrapTimeout)
	cfg.BootstrapMaxBytes = int64(env.Int("ASSENT_BOOTSTRAP_MAX_BYTES", projection.DefaultBootstrapMaxBytes, 1<<20, 1<<50))
	cfg.SnapshotAddr = env.String("ASSENT_SNAPSHOT_ADDR", "")
	cfg.SnapshotInterval = env.Duration("ASSENT_SNAPSHOT_INTERVAL", 10*time.Minute)
	if path := env.String("ASSENT_SNAPSHOT_TOKEN_FILE", ""); path != "" {
		raw, err := os.ReadFile(path) //nolint:gosec // the operator names the token file
		token := strings.TrimSpace(string(raw))
		switch {
		case err != nil:
			env.Problem("ASSENT_SNAPSHOT_TOKEN_FILE: %v", err)
		case len(token) < 16:
			env.Problem("ASSENT_SNAPSHOT_TOKEN_FILE: the token is shorter than 16 characters")
		}
		cfg.SnapshotToken = token
	}
	if cfg.SnapshotAddr != "" && cfg.SnapshotToken == "" {
		env.Problem("ASSENT_SNAPSHOT_ADDR needs ASSENT_SNAPSHOT_TOKEN_FILE: a snapshot holds every request")
	}
	if cfg.BootstrapTimeout <= 0 || cfg.SnapshotInterval <= 0 {
		env.Problem("ASSENT_BOOTSTRAP_TIMEOUT and ASSENT_SNAPSHOT_INTERVAL must be positive")
	}
	tr, trerr := tracing.FromEnv(getenv)
	env.Add(trerr)
	cfg.Tracing = tr
	cfg.Instance = env.Instance("api", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	env.Add(kerr, terr)
	if cfg.WriteWait <= 0 {
		env.Problem("ASSENT_WRITE_WAIT must be positive")
	}
	return cfg, env.Err()
}
