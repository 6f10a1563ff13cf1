// Package config reads the console's configuration from ASSENT_*
// environment variables and documents every one of them in Usage.
package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/daemon"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/policy"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
)

// Config is the console's configuration.
type Config struct {
	Kafka    eventlog.Config
	Topics   eventlog.TopicSpec
	HTTPAddr string
	Instance string
	DataDir  string // the Pebble store under it: store/ (the requests and the audit index, joined)
	LogLevel string

	// PublicURL is where browsers reach this replica (or the load
	// balancer in front of the replicas): the OIDC redirect URL is
	// PublicURL + /auth/callback, and an https URL makes every cookie
	// Secure (and __Host- prefixed) and turns on HSTS.
	PublicURL *url.URL

	OIDCIssuer       string
	OIDCClientID     string
	OIDCClientSecret string // read from ASSENT_OIDC_CLIENT_SECRET_FILE; never logged
	OIDCScopes       []string
	OIDCGroupsClaim  string

	AuditorGroups []string          // IdP groups whose members get the auditor role
	Policies      approval.Policies // for the admins list (who may cancel any request)
	PolicyFile    string            // where Policies came from, for the log
	SessionKeys   [][]byte          // the first seals, every one opens
	SessionTTL    time.Duration     // absolute lifetime of a sign-in
	Keys          *wire.KeyRing     // the published decider public keys: only what a seal covers is applied
	CommandKey    *wire.Signer      // signs every command; speaks as service:console, with on_behalf
	WriteWait     time.Duration     // how long a vote waits for its outcome
	RateLimit     float64           // requests per second per user (or per address before sign-in)
	MaxStreams    int               // live-update streams per replica
	StreamLife    time.Duration     // a stream is closed (and reopened by the browser) after this
	ExportMaxRows int               // rows per export
	Listener      net.Listener      // tests: listen here instead of HTTPAddr
}

// Usage is printed by --help and after a configuration error.
const Usage = `usage: console [--help]
       console session-key     prints a new session key line

The console is Assent's web interface for people: approvers vote from an
inbox that updates live, requesters follow their requests, auditors
search, export and verify the log. People sign in through the company's
OpenID Connect identity provider (authorization code flow with PKCE);
their principal is the ID token's email. Votes and cancels are the same
commands the api writes (source assent/console, the signed-in user as
actor); pages are read from the replica's own projections of the events
topic, so any replica serves any page and sessions work on every replica
that shares the session key file.

Environment:
  ASSENT_KAFKA_BROKERS            comma-separated brokers (required)
  ASSENT_KAFKA_USER               Kafka user (SASL/SCRAM-SHA-512), with
  ASSENT_KAFKA_PASSWORD_FILE      the file holding its password
  ASSENT_KAFKA_LINGER             producer linger, a Go duration (default 2ms)
  ASSENT_HTTP_ADDR                listen address (default 127.0.0.1:8680)
  ASSENT_CONSOLE_PUBLIC_URL       the URL browsers use (default http://<ASSENT_HTTP_ADDR>);
                                  https makes cookies Secure and turns on HSTS
  ASSENT_INSTANCE_ID              unique name of this replica (default console-<host>-<port>)
  ASSENT_DATA_DIR                 Pebble projections; a cache (default .run/<instance>)
  ASSENT_PARTITIONS               partitions of both topics (default 12)
  ASSENT_COMMANDS_TOPIC           default assent.commands.v1
  ASSENT_EVENTS_TOPIC             default assent.events.v1
  ASSENT_OIDC_ISSUER              the identity provider's issuer URL (required)
  ASSENT_OIDC_CLIENT_ID           the console's client id at the provider (required)
  ASSENT_OIDC_CLIENT_SECRET_FILE  a file holding the client secret (required; read at
                                  start, never logged)
  ASSENT_OIDC_SCOPES              space-separated scopes (default "openid email profile groups")
  ASSENT_OIDC_GROUPS_CLAIM        the ID token claim listing groups (default groups)
  ASSENT_CONSOLE_AUDITOR_GROUPS   comma-separated IdP groups whose members get the
                                  auditor role (default none: no one is an auditor)
  ASSENT_POLICY_FILE              the policy file the deciders use; the console reads its
                                  admins (who may cancel any request). Optional: without
                                  it only requesters see a cancel button
  ASSENT_CONSOLE_SESSION_KEY_FILE session keys, one per line, 64 hex digits each; the
                                  first seals new sessions, every one opens (rotation).
                                  Every replica reads the same file (required)
  ASSENT_CONSOLE_SESSION_TTL      how long a sign-in lasts (default 8h, at most 24h)
  ASSENT_SEAL_KEYS_FILE           the published decider public keys: both projections
                                  apply only records a seal signed with one of them
                                  covers (default infra/keys/decider-keys.json)
  ASSENT_COMMAND_KEY_FILE         Ed25519 private key (PKCS #8 PEM) that signs every
                                  command this service produces (required: the decider
                                  refuses unsigned commands). Demo key, for scripts/up
                                  and tests only: infra/keys/demo-console.key.pem
  ASSENT_COMMAND_KEY_ID           its key id in infra/keys/service-keys.json, which
                                  names the principal it speaks as (required; demo
                                  key: demo-console-2026-01)
  ASSENT_WRITE_WAIT               how long a vote or cancel waits for its outcome
                                  (default 5s)
  ASSENT_CONSOLE_RATE_LIMIT       requests per second per person, or per address before
                                  sign-in; bursts of twice that (default 20)
  ASSENT_CONSOLE_MAX_STREAMS      live-update streams per replica (default 2000)
  ASSENT_CONSOLE_STREAM_LIFETIME  a live-update stream is closed, and reopened by the
                                  browser, after this (default 10m)
  ASSENT_CONSOLE_EXPORT_MAX_ROWS  rows in one export (default 1000000)
  ASSENT_LOG_LEVEL                debug, info, warn, error (default info)
`

// Load reads the configuration and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	env := daemon.NewEnv(getenv)
	kafka, kerr := eventlog.ConfigFromEnv(getenv)
	topics, terr := eventlog.TopicSpecFromEnv(getenv)
	keys, serr := projection.LoadKeys(getenv)
	env.Add(kerr, terr, serr)
	signer, cerr := command.LoadSigner(getenv)
	env.Add(cerr)
	cfg := Config{
		Keys:            keys,
		CommandKey:      signer,
		Kafka:           kafka,
		Topics:          topics,
		HTTPAddr:        env.String("ASSENT_HTTP_ADDR", "127.0.0.1:8680"),
		LogLevel:        env.String("ASSENT_LOG_LEVEL", "info"),
		OIDCIssuer:      env.Required("ASSENT_OIDC_ISSUER", "the issuer URL of your identity provider, such as https://accounts.example.com"),
		OIDCClientID:    env.Required("ASSENT_OIDC_CLIENT_ID", "the client id the identity provider gave the console"),
		OIDCScopes:      strings.Fields(env.String("ASSENT_OIDC_SCOPES", "openid email profile groups")),
		OIDCGroupsClaim: env.String("ASSENT_OIDC_GROUPS_CLAIM", "groups"),
		AuditorGroups:   splitList(env.String("ASSENT_CONSOLE_AUDITOR_GROUPS", "")),
		SessionTTL:      env.Duration("ASSENT_CONSOLE_SESSION_TTL", 8*time.Hour),
		WriteWait:       env.Duration("ASSENT_WRITE_WAIT", 5*time.Second),
		RateLimit:       float64(env.Int("ASSENT_CONSOLE_RATE_LIMIT", 20, 1, 10000)),
		MaxStreams:      env.Int("ASSENT_CONSOLE_MAX_STREAMS", 2000, 1, 100000),
		StreamLife:      env.Duration("ASSENT_CONSOLE_STREAM_LIFETIME", 10*time.Minute),
		ExportMaxRows:   env.Int("ASSENT_CONSOLE_EXPORT_MAX_ROWS", 1_000_000, 1, 100_000_000),
		PolicyFile:      env.String("ASSENT_POLICY_FILE", ""),
	}
	cfg.Instance = env.Instance("console", cfg.HTTPAddr)
	cfg.DataDir = env.String("ASSENT_DATA_DIR", ".run/"+cfg.Instance)
	cfg.Kafka.ClientID = cfg.Instance

	public := env.String("ASSENT_CONSOLE_PUBLIC_URL", "http://"+cfg.HTTPAddr)
	u, err := url.Parse(public)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		env.Problem("ASSENT_CONSOLE_PUBLIC_URL=%q must be an http or https URL with a host and no query", public)
	default:
		u.Path = strings.TrimSuffix(u.Path, "/")
		if u.Path != "" {
			env.Problem("ASSENT_CONSOLE_PUBLIC_URL=%q: serve the console at the root of its host (no path)", public)
		}
		cfg.PublicURL = u
	}
	if cfg.OIDCIssuer != "" {
		if iu, err := url.Parse(cfg.OIDCIssuer); err != nil || (iu.Scheme != "https" && !loopback(iu.Hostname())) {
			env.Problem("ASSENT_OIDC_ISSUER=%q must be an https URL (http only on a loopback address, for the demo)", cfg.OIDCIssuer)
		}
	}
	if !contains(cfg.OIDCScopes, "openid") || !contains(cfg.OIDCScopes, "email") {
		env.Problem("ASSENT_OIDC_SCOPES must include openid and email: the principal is the ID token's email")
	}
	if f := env.Required("ASSENT_OIDC_CLIENT_SECRET_FILE", "a file holding the client secret the identity provider gave the console"); f != "" {
		b, err := os.ReadFile(f) //nolint:gosec // G304: the path is the operator's configuration
		secret := strings.TrimSpace(string(b))
		switch {
		case err != nil:
			env.Problem("ASSENT_OIDC_CLIENT_SECRET_FILE: %v", err)
		case secret == "":
			env.Problem("ASSENT_OIDC_CLIENT_SECRET_FILE=%s is empty", f)
		}
		cfg.OIDCClientSecret = secret
	}
	if f := env.Required("ASSENT_CONSOLE_SESSION_KEY_FILE", "a file of session keys (console session-key prints one); every replica reads the same file"); f != "" {
		keys, err := LoadSessionKeys(f)
		if err != nil {
			env.Add(err)
		}
		cfg.SessionKeys = keys
	}
	if cfg.SessionTTL <= 0 || cfg.SessionTTL > 24*time.Hour {
		env.Problem("ASSENT_CONSOLE_SESSION_TTL must be positive and at most 24h")
	}
	if cfg.WriteWait <= 0 || cfg.WriteWait > time.Minute {
		env.Problem("ASSENT_WRITE_WAIT must be positive and at most 1m")
	}
	if cfg.StreamLife < time.Second {
		env.Problem("ASSENT_CONSOLE_STREAM_LIFETIME must be at least 1s")
	}
	if cfg.PolicyFile != "" {
		ps, err := policy.Load(cfg.PolicyFile)
		if err != nil {
			env.Problem("ASSENT_POLICY_FILE: %v", err)
		}
		cfg.Policies = ps
	}
	return cfg, env.Err()
}

// LoadSessionKeys reads a session key file: one key a line, 64 hex digits
// (32 bytes); blank lines and lines starting with # are skipped.
func LoadSessionKeys(path string) ([][]byte, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the path is the operator's configuration
	if err != nil {
		return nil, fmt.Errorf("ASSENT_CONSOLE_SESSION_KEY_FILE: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := hex.DecodeString(line)
		if err != nil || len(k) != 32 {
			// The line itself is a secret: name where it is, not what it says.
			return nil, fmt.Errorf("ASSENT_CONSOLE_SESSION_KEY_FILE=%s line %d: a key is 64 hex digits (console session-key prints one)", path, i+1)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ASSENT_CONSOLE_SESSION_KEY_FILE=%s holds no key (console session-key prints one)", path)
	}
	return keys, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
