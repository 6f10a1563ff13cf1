package service

import (
	"crypto/x509"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/notifier/internal/email"
	"github.com/assent-dev/assent/services/notifier/internal/webhook"
)

// Config is the notifier's configuration.
type Config struct {
	// Keys are the published decider public keys: the projection applies
	// only what they sign.
	Keys *wire.KeyRing
	// CommandKey signs the delivery outcomes the notifier records; it
	// speaks as service:notifier.
	CommandKey *wire.Signer
	Kafka      eventlog.Config
	Topics     eventlog.TopicSpec
	HTTPAddr   string
	Instance   string
	DataDir    string
	Group      string
	LogLevel   string

	SecretsFile string
	AllowNets   []netip.Prefix
	RootCAs     *x509.CertPool // nil: the system's
	HTTPTimeout time.Duration
	MaxResponse int64

	Horizon         time.Duration
	RetryBase       time.Duration
	RetryMax        time.Duration
	Concurrency     int
	Rate            float64
	BreakerFailures int
	Since           time.Time

	SMTP       email.Config
	AdminToken string // enables POST /v1/replays; never logged
}

// Usage is printed by --help and after a configuration error.
const Usage = `usage: notifier [--help]

The notifier delivers a request's events to the webhook and email targets
of its policy: signed webhooks (Standard Webhooks, the CloudEvent as the
body) and emails (a text and an HTML part) over SMTP with STARTTLS and
authentication. Delivery is at least once to every target, in per-request
order, from any replica: the pending deliveries are a projection of the
event log, each partition's are driven by the replica that owns it in the
consumer group, and every outcome (delivered, or dead-lettered with its
reason) is recorded in the log with a record-notification command.

Run two or more replicas with the same ASSENT_NOTIFIER_GROUP.

Environment:
  ASSENT_KAFKA_BROKERS              comma-separated brokers (required)
  ASSENT_KAFKA_USER                 Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE        the file holding its password
  ASSENT_HTTP_ADDR                  probes, metrics and the replay endpoint (default 127.0.0.1:8580)
  ASSENT_INSTANCE_ID                unique name of this replica (default notifier-<host>-<http port>)
  ASSENT_DATA_DIR                   Pebble projection directory; a cache of the log (default .run/<instance>)
  ASSENT_NOTIFIER_GROUP             consumer group (default assent-notifier)
  ASSENT_PARTITIONS                 partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC             default assent.commands.v1
  ASSENT_EVENTS_TOPIC               default assent.events.v1
  ASSENT_SEAL_KEYS_FILE             the published decider public keys; only records a
                                    seal signed with one of them covers are applied
                                    (default infra/keys/decider-keys.json)
  ASSENT_COMMAND_KEY_FILE           Ed25519 private key (PKCS #8 PEM) that signs every
                                    command this service produces (required: the decider
                                    refuses unsigned commands). Demo key, for scripts/up
                                    and tests only: infra/keys/demo-notifier.key.pem
  ASSENT_COMMAND_KEY_ID             its key id in infra/keys/service-keys.json, which
                                    names the principal it speaks as (required; demo
                                    key: demo-notifier-2026-01)
  ASSENT_LOG_LEVEL                  debug, info, warn, error (default info)

  Webhooks:
  ASSENT_NOTIFIER_SECRETS_FILE      YAML mapping each webhook URL to its whsec_ secret, or a list
                                    of them during a rotation (each signs); read again when it
                                    changes. A webhook without a secret is dead-lettered.
  ASSENT_NOTIFIER_ALLOW_NETS        comma-separated CIDRs that may be called although loopback,
                                    link-local or private (default none: such targets are refused)
  ASSENT_NOTIFIER_CA_FILE           PEM roots to verify receivers with, added to the system's
  ASSENT_NOTIFIER_HTTP_TIMEOUT      one webhook call, connect to last byte (default 10s)
  ASSENT_NOTIFIER_MAX_RESPONSE      bytes of an answer read, at most (default 4096)

  Email:
  ASSENT_NOTIFIER_SMTP_HOST         SMTP server (unset: email targets are dead-lettered)
  ASSENT_NOTIFIER_SMTP_PORT         default 587; STARTTLS is always required
  ASSENT_NOTIFIER_SMTP_USERNAME     SMTP user
  ASSENT_NOTIFIER_SMTP_PASSWORD_FILE file holding the SMTP password (never logged)
  ASSENT_NOTIFIER_SMTP_AUTH         PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, ... (default
                                    AUTODISCOVER: the strongest the server offers)
  ASSENT_NOTIFIER_SMTP_FROM         the From address (required with a host)
  ASSENT_NOTIFIER_SMTP_TIMEOUT      one SMTP session (default 30s)
  ASSENT_NOTIFIER_CONSOLE_URL       link in emails, {id} is the request id
                                    (e.g. https://console.example.com/requests/{id})
  ASSENT_NOTIFIER_API_URL           API base URL linked in emails (e.g. https://assent.example.com)

  Retries:
  ASSENT_NOTIFIER_HORIZON           give a delivery up this long after its event (default 24h)
  ASSENT_NOTIFIER_RETRY_BASE        first retry's backoff ceiling (default 1s); it doubles,
                                    with full jitter, up to
  ASSENT_NOTIFIER_RETRY_MAX         the largest backoff ceiling (default 1m)
  ASSENT_NOTIFIER_TARGET_CONCURRENCY attempts in flight per target, each for another request
                                    (default 4)
  ASSENT_NOTIFIER_TARGET_RATE       attempts per second per target (default 50)
  ASSENT_NOTIFIER_BREAKER_FAILURES  consecutive failures that open a target's breaker (default 5)
  ASSENT_NOTIFIER_SINCE             skip events older than this RFC 3339 time (deploying on an
                                    old log); default: deliver everything within the horizon

  Replays:
  ASSENT_NOTIFIER_ADMIN_TOKEN_FILE  file holding the bearer token of POST /v1/replays, which
                                    replays a dead letter (unset: the endpoint is off)
`

// Load reads the configuration and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	env := daemon.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	topics, terr := eventlog.TopicSpecFromEnv(getenv)
	keys, keysErr := projection.LoadKeys(getenv)
	env.Add(keysErr)
	signer, serr := command.LoadSigner(getenv)
	env.Add(serr)
	cfg := Config{
		Keys:            keys,
		CommandKey:      signer,
		Kafka:           kafka,
		Topics:          topics,
		HTTPAddr:        env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8580"),
		Group:           env.String("ASSENT_NOTIFIER_GROUP", "assent-notifier"),
		LogLevel:        env.String("ASSENT_LOG_LEVEL", "info"),
		SecretsFile:     env.String("ASSENT_NOTIFIER_SECRETS_FILE", ""),
		HTTPTimeout:     env.Duration("ASSENT_NOTIFIER_HTTP_TIMEOUT", 10*time.Second),
		MaxResponse:     int64(env.Int("ASSENT_NOTIFIER_MAX_RESPONSE", 4096, 0, 1<<20)),
		Horizon:         env.Duration("ASSENT_NOTIFIER_HORIZON", 24*time.Hour),
		RetryBase:       env.Duration("ASSENT_NOTIFIER_RETRY_BASE", time.Second),
		RetryMax:        env.Duration("ASSENT_NOTIFIER_RETRY_MAX", time.Minute),
		Concurrency:     env.Int("ASSENT_NOTIFIER_TARGET_CONCURRENCY", 4, 1, 256),
		BreakerFailures: env.Int("ASSENT_NOTIFIER_BREAKER_FAILURES", 5, 1, 1000),
	}
	cfg.Instance = env.Instance("notifier", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance
	env.Add(kerr, terr)

	if s := env.String("ASSENT_NOTIFIER_ALLOW_NETS", ""); s != "" {
		for _, part := range strings.Split(s, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(part))
			if err != nil {
				env.Problem("ASSENT_NOTIFIER_ALLOW_NETS: %q is not a CIDR such as 127.0.0.0/8", strings.TrimSpace(part))
				continue
			}
			cfg.AllowNets = append(cfg.AllowNets, p.Masked())
		}
	}
	if f := env.String("ASSENT_NOTIFIER_CA_FILE", ""); f != "" {
		pem, err := readBounded(f, 1<<20)
		pool, perr := x509.SystemCertPool()
		if perr != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		switch {
		case err != nil:
			env.Problem("ASSENT_NOTIFIER_CA_FILE: %v", err)
		case !pool.AppendCertsFromPEM(pem):
			env.Problem("ASSENT_NOTIFIER_CA_FILE: %s holds no PEM certificate", f)
		default:
			cfg.RootCAs = pool
		}
	}
	if s := env.String("ASSENT_NOTIFIER_TARGET_RATE", "50"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 || r > 100000 {
			env.Problem("ASSENT_NOTIFIER_TARGET_RATE=%q: want a number of attempts per second in (0, 100000]", s)
		}
		cfg.Rate = r
	}
	if s := env.String("ASSENT_NOTIFIER_SINCE", ""); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			env.Problem("ASSENT_NOTIFIER_SINCE=%q: want an RFC 3339 time such as 2026-01-01T00:00:00Z", s)
		}
		cfg.Since = t
	}
	switch {
	case cfg.HTTPTimeout <= 0 || cfg.HTTPTimeout > 5*time.Minute:
		env.Problem("ASSENT_NOTIFIER_HTTP_TIMEOUT must be positive and at most 5m")
	case cfg.Horizon < time.Second:
		env.Problem("ASSENT_NOTIFIER_HORIZON must be at least 1s")
	case cfg.RetryBase <= 0 || cfg.RetryMax < cfg.RetryBase:
		env.Problem("ASSENT_NOTIFIER_RETRY_BASE must be positive and at most ASSENT_NOTIFIER_RETRY_MAX")
	}

	cfg.SMTP = email.Config{
		Host:     env.String("ASSENT_NOTIFIER_SMTP_HOST", ""),
		Port:     env.Int("ASSENT_NOTIFIER_SMTP_PORT", 587, 1, 65535),
		Username: env.String("ASSENT_NOTIFIER_SMTP_USERNAME", ""),
		Auth:     strings.ToUpper(env.String("ASSENT_NOTIFIER_SMTP_AUTH", "AUTODISCOVER")),
		From:     env.String("ASSENT_NOTIFIER_SMTP_FROM", ""),
		Timeout:  env.Duration("ASSENT_NOTIFIER_SMTP_TIMEOUT", 30*time.Second),
		RootCAs:  cfg.RootCAs,
		Links: email.Links{
			Console: env.String("ASSENT_NOTIFIER_CONSOLE_URL", ""),
			API:     env.String("ASSENT_NOTIFIER_API_URL", ""),
		},
	}
	if f := env.String("ASSENT_NOTIFIER_SMTP_PASSWORD_FILE", ""); f != "" {
		b, err := readBounded(f, 4096)
		if err != nil {
			env.Problem("ASSENT_NOTIFIER_SMTP_PASSWORD_FILE: %v", err)
		}
		cfg.SMTP.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.SMTP.Host != "" {
		if a, err := mail.ParseAddress(cfg.SMTP.From); err != nil || a.Name != "" {
			env.Problem("ASSENT_NOTIFIER_SMTP_FROM=%q: want a bare address such as assent@example.com", cfg.SMTP.From)
		} else {
			cfg.SMTP.Domain = cfg.SMTP.From[strings.LastIndex(cfg.SMTP.From, "@")+1:]
		}
		if cfg.SMTP.Username == "" || cfg.SMTP.Password == "" {
			env.Problem("ASSENT_NOTIFIER_SMTP_USERNAME and ASSENT_NOTIFIER_SMTP_PASSWORD_FILE are required with a host: the notifier always authenticates")
		}
	}
	for name, v := range map[string]string{"ASSENT_NOTIFIER_CONSOLE_URL": cfg.SMTP.Links.Console, "ASSENT_NOTIFIER_API_URL": cfg.SMTP.Links.API} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(strings.ReplaceAll(v, "{id}", "x")); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			env.Problem("%s=%q: want an http(s) URL", name, v)
		}
	}
	if f := env.String("ASSENT_NOTIFIER_ADMIN_TOKEN_FILE", ""); f != "" {
		b, err := readBounded(f, 4096)
		tok := strings.TrimSpace(string(b))
		switch {
		case err != nil:
			env.Problem("ASSENT_NOTIFIER_ADMIN_TOKEN_FILE: %v", err)
		case len(tok) < 16:
			env.Problem("ASSENT_NOTIFIER_ADMIN_TOKEN_FILE: the token must be at least 16 characters")
		}
		cfg.AdminToken = tok
	}
	if _, err := webhook.LoadSecrets(cfg.SecretsFile); err != nil {
		env.Problem("ASSENT_NOTIFIER_SECRETS_FILE: %v", err)
	}
	return cfg, env.Err()
}

func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, fi.Size(), limit)
	}
	return os.ReadFile(path) //nolint:gosec // the operator names the file
}
