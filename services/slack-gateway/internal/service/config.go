package service

import (
	"strconv"
	"time"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Config is the gateway's configuration.
type Config struct {
	Kafka         eventlog.Config
	Topics        eventlog.TopicSpec
	HTTPAddr      string
	Instance      string
	DataDir       string
	Group         string // the outbound consumer group
	BotToken      string
	SigningSecret string
	SlackAPIURL   string
	RateScale     float64
	UserTTL       time.Duration
	AckTimeout    time.Duration
	MaxBody       int64
	LogLevel      string
	// Keys are the published decider public keys: the projection applies
	// only what they sign.
	Keys *wire.KeyRing
	// CommandKey signs every command the gateway produces; it speaks as
	// service:slack-gateway, with the on_behalf role.
	CommandKey *wire.Signer
}

// Usage is printed by --help and after a configuration error.
const Usage = `usage: slack-gateway [--help]

The Slack gateway lets approvers decide in Slack.

Inbound, POST /slack/interactivity verifies Slack's request signature,
turns an Approve click (or a Reject modal with its reason) into a vote
command, and answers Slack only once Kafka has stored the command. The
clicker then gets an ephemeral reply with the outcome.

Outbound, a consumer group on the events topic posts an approval card to
each policy channel (and DMs the approvers if the policy asks), updates it
in place on every vote, shows the outcome when the request is decided, and
DMs the requester. Where each card lives is recorded in the event log, so
any replica can update any card and none posts a duplicate.

To try it without a Slack workspace, tools/fake-slack runs a local
stand-in for Slack's Web API and prints signed clicks (scripts/up uses it
unless ASSENT_SLACK_BOT_TOKEN is set).

Environment:
  ASSENT_SLACK_BOT_TOKEN       bot token, xoxb-... (required); scopes: chat:write,
                               im:write, users:read, users:read.email,
                               channels:read, groups:read, channels:history,
                               groups:history
  ASSENT_SLACK_SIGNING_SECRET  the app's signing secret (required)
  ASSENT_SLACK_API_URL         Slack Web API base URL (default https://slack.com/api/)
  ASSENT_SLACK_RATE_SCALE      multiplies Slack's rate-limit tiers (default 1)
  ASSENT_SLACK_USER_TTL        how long a Slack user's email is cached (default 10m)
  ASSENT_SLACK_ACK_TIMEOUT     time to store a click before answering 503 (default 2.5s;
                               Slack gives up after 3s)
  ASSENT_KAFKA_BROKERS         comma-separated brokers (required)
  ASSENT_KAFKA_USER            Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE   the file holding its password
  ASSENT_HTTP_ADDR             listen address (default 127.0.0.1:8380)
  ASSENT_INSTANCE_ID           unique name of this replica
                               (default slack-gateway-<host>-<http port>)
  ASSENT_DATA_DIR              Pebble projection directory; a cache (default .run/<instance>)
  ASSENT_SLACK_GROUP           outbound consumer group (default assent-slack-gateway)
  ASSENT_PARTITIONS            partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC        default assent.commands.v1
  ASSENT_EVENTS_TOPIC          default assent.events.v1
  ASSENT_MAX_BODY              largest Slack request body in bytes (default 1048576)
  ASSENT_SEAL_KEYS_FILE        the published decider public keys; only records a
                               seal signed with one of them covers are applied
                               (default infra/keys/decider-keys.json)
  ASSENT_COMMAND_KEY_FILE      Ed25519 private key (PKCS #8 PEM) that signs every
                               command this service produces (required: the decider
                               refuses unsigned commands). Demo key, for scripts/up
                               and tests only: infra/keys/demo-slack-gateway.key.pem
  ASSENT_COMMAND_KEY_ID        its key id in infra/keys/service-keys.json, which
                               names the principal it speaks as (required; demo
                               key: demo-slack-gateway-2026-01)
  ASSENT_LOG_LEVEL             debug, info, warn, error (default info)
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
		Keys:          keys,
		CommandKey:    signer,
		Kafka:         kafka,
		Topics:        topics,
		HTTPAddr:      env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8380"),
		Group:         env.String("ASSENT_SLACK_GROUP", "assent-slack-gateway"),
		BotToken:      env.Required("ASSENT_SLACK_BOT_TOKEN", "the bot token from your Slack app's OAuth page (xoxb-...)"),
		SigningSecret: env.Required("ASSENT_SLACK_SIGNING_SECRET", "from your Slack app's Basic Information page"),
		SlackAPIURL:   env.String("ASSENT_SLACK_API_URL", "https://slack.com/api/"),
		UserTTL:       env.Duration("ASSENT_SLACK_USER_TTL", 10*time.Minute),
		AckTimeout:    env.Duration("ASSENT_SLACK_ACK_TIMEOUT", 2500*time.Millisecond),
		MaxBody:       int64(env.Int("ASSENT_MAX_BODY", 1<<20, 1<<10, 16<<20)),
		LogLevel:      env.String("ASSENT_LOG_LEVEL", "info"),
	}
	cfg.Instance = env.Instance("slack-gateway", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	env.Add(kerr, terr)
	scale := env.String("ASSENT_SLACK_RATE_SCALE", "1")
	s, err := strconv.ParseFloat(scale, 64)
	if err != nil || s <= 0 || s > 1000 {
		env.Problem("ASSENT_SLACK_RATE_SCALE=%q: want a number in (0, 1000]", scale)
	}
	cfg.RateScale = s
	if cfg.AckTimeout <= 0 || cfg.AckTimeout > 3*time.Second {
		env.Problem("ASSENT_SLACK_ACK_TIMEOUT must be positive and at most 3s (Slack waits 3s)")
	}
	return cfg, env.Err()
}
