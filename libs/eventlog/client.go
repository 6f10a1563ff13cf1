package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Environment variables read by ConfigFromEnv.
const (
	EnvBrokers = "ASSENT_KAFKA_BROKERS" // required: comma-separated host:port list
	EnvLinger  = "ASSENT_KAFKA_LINGER"  // optional: a Go duration, "0" for none
	// EnvUser and EnvPasswordFile name the SCRAM-SHA-512 credentials the
	// client authenticates with; both or neither. The password is read
	// from the file at each authentication, so a rotated file takes
	// effect at the next connection; it is never logged.
	EnvUser         = "ASSENT_KAFKA_USER"
	EnvPasswordFile = "ASSENT_KAFKA_PASSWORD_FILE" //nolint:gosec // G101: the name of a variable that holds a file path, not a credential
)

// Defaults that Config applies to its zero fields.
const (
	// DefaultLinger is how long a partition's batch waits for more records
	// before it is sent. franz-go's own default has been 10ms since v1.20
	// (it was 0 before). Assent answers an HTTP request only after its
	// command is acknowledged, so every millisecond of linger is paid by
	// a user; 2ms still lets a busy decider or API batch. ProduceSync
	// skips the linger for the partitions it produces to, so it mostly
	// matters to asynchronous Produce calls.
	DefaultLinger = 2 * time.Millisecond

	// DefaultDialTimeout bounds one connection attempt (franz-go: 10s).
	// Brokers are on a LAN or loopback; a slow dial is a dead broker.
	DefaultDialTimeout = 5 * time.Second

	// DefaultRecordDeliveryTimeout bounds how long a record may wait to be
	// acknowledged (franz-go: forever). A producer facing a cluster that
	// cannot reach min.insync.replicas fails instead of hanging, and the
	// caller, holding a command id, can retry safely. franz-go only
	// enforces it where that cannot break idempotent sequence numbers.
	DefaultRecordDeliveryTimeout = 30 * time.Second
)

// How fast a client lets go of a broker that died or was cut off
// (docs/architecture.md, "Failover"): franz-go's defaults wait far longer
// than Kafka's own clients, and each of these waits was measured inside
// the pause that losing one broker caused (scripts/bench --failover).
const (
	// DefaultMetadataMinAge is the least time between two metadata
	// refreshes (franz-go: 5s). A produce to a broker that is gone asks
	// for fresh metadata at once, but franz-go refreshes at most this
	// often, so the new leader, elected once the controller fenced the
	// broker, was learnt up to 5s late. Kafka's clients refresh after
	// retry.backoff.ms (100ms).
	DefaultMetadataMinAge = 250 * time.Millisecond

	// DefaultMetadataMaxAge is the longest a client goes without fresh
	// metadata (franz-go, like Kafka's clients: 5 minutes). A consumer
	// learns of a new leader only from an error or a refresh, and a
	// leader cut off from its followers (but not from its clients) raises
	// no error: it keeps answering fetches with what it had, after the
	// controller has moved its leaderships. A decider whose projection
	// reads such a leader cannot catch up a partition it is given until
	// it looks again.
	DefaultMetadataMaxAge = 2 * time.Second

	// DefaultProduceRequestTimeout is how long a broker may hold a produce
	// waiting for its in-sync replicas before it answers REQUEST_TIMED_OUT
	// (franz-go: 10s). A leader cut off from its followers but not from
	// its clients held every acks=all write for the full 10s, after the
	// controller had already moved its leaderships. The write is then
	// retried on the new leader; idempotence keeps a retried batch from
	// being written twice, in a transaction as outside one.
	DefaultProduceRequestTimeout = 2 * time.Second

	// DefaultRequestTimeoutOverhead is how long a request without a
	// timeout of its own (EndTxn, InitProducerId, Heartbeat, Metadata) may
	// go unanswered before the connection is dropped and the request
	// retried, and what is added to the timeout of those with one (a
	// fetch's wait, a produce's) (franz-go: 10s). A coordinator cut off
	// from its followers holds an EndTxn for up to its request.timeout.ms
	// (30s) while it cannot replicate the transaction's state.
	DefaultRequestTimeoutOverhead = 3 * time.Second

	// DefaultRetryBackoffMax caps the backoff between retries, which grows
	// from 100ms (franz-go: from 250ms to 5s). Kafka's clients back off
	// from 100ms to 1s (retry.backoff.ms, retry.backoff.max.ms). With 5s,
	// a group member that failed to rejoin a few times while the
	// coordinator was moving waited up to 5s more after it had moved.
	DefaultRetryBackoffMax = time.Second
)

// retryBackoff doubles from 100ms to DefaultRetryBackoffMax, with 20%
// jitter either way, as Kafka's clients do.
var retryBackoff = RetryBackoff(DefaultRetryBackoffMax)

// RetryBackoff returns a kgo.RetryBackoffFn that doubles from 100ms to
// at most limit, with 20% jitter either way. A client whose retries must
// not wait long (the deciders' group member) passes it with a lower
// limit than DefaultRetryBackoffMax.
func RetryBackoff(limit time.Duration) func(fails int) time.Duration {
	return func(fails int) time.Duration {
		d := min(100*time.Millisecond, limit)
		for i := 1; i < fails && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
		return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64())) //nolint:gosec // G404: jitter, not a secret
	}
}

// Config is what a service needs to talk to Kafka. The zero value of every
// field except Brokers means its default.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// ClientID names the client in broker logs and quotas; default "assent".
	ClientID string
	// Linger is the producer linger; 0 means DefaultLinger, a negative
	// value means none.
	Linger time.Duration
	// DialTimeout bounds one connection attempt; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// RecordDeliveryTimeout bounds how long a produced record may wait for
	// its acknowledgement; 0 means DefaultRecordDeliveryTimeout.
	RecordDeliveryTimeout time.Duration
	// FencedBrokerProbe is how often the client asks each broker which
	// brokers the cluster has, to let go of one the others no longer list
	// (see DefaultFencedBrokerProbe); 0 means the default, a negative value
	// never.
	FencedBrokerProbe time.Duration
	// SCRAM, when set, authenticates the client with SASL/SCRAM-SHA-512.
	// Every cluster Assent starts requires it (docs/architecture.md,
	// "Kafka authentication and ACLs").
	SCRAM *SCRAM
	// LogLevel is the level of franz-go's own log (EnvKafkaLogLevel), and
	// Logger where it goes (slog.Default() if nil); none by default.
	LogLevel kgo.LogLevel
	Logger   *slog.Logger
}

// SCRAM names a SASL/SCRAM-SHA-512 user and the file holding its password.
type SCRAM struct {
	User         string
	PasswordFile string
}

// String names the user, never the password.
func (s *SCRAM) String() string { return "SCRAM-SHA-512 user " + s.User }

// Opt is the kgo option that authenticates as s. The password file is
// read at each authentication, so a rotated password takes effect at the
// next connection.
func (s *SCRAM) Opt() kgo.Opt {
	return kgo.SASL(scram.Sha512(func(context.Context) (scram.Auth, error) {
		p, err := s.password()
		return scram.Auth{User: s.User, Pass: p}, err
	}))
}

// password reads the password file: its content without surrounding
// whitespace.
func (s *SCRAM) password() (string, error) {
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("eventlog: the Kafka password of %s: %w", s.User, err)
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return "", fmt.Errorf("eventlog: the Kafka password file of %s (%s) is empty", s.User, s.PasswordFile)
	}
	return p, nil
}

// ConfigFromEnv reads a Config from ASSENT_KAFKA_BROKERS (required),
// ASSENT_KAFKA_LINGER and ASSENT_KAFKA_LOG_LEVEL (optional). getenv is
// os.Getenv in a service.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	raw := getenv(EnvBrokers)
	if strings.TrimSpace(raw) == "" {
		return Config{}, errors.New("eventlog: " + EnvBrokers + " is not set; start a cluster with scripts/kafka up")
	}
	brokers, err := ParseBrokers(raw)
	if err != nil {
		return Config{}, fmt.Errorf("eventlog: %s: %w", EnvBrokers, err)
	}
	cfg := Config{Brokers: brokers}
	if cfg.SCRAM, err = SCRAMFromEnv(getenv); err != nil {
		return Config{}, err
	}
	if cfg.LogLevel, err = ParseKafkaLogLevel(getenv(EnvKafkaLogLevel)); err != nil {
		return Config{}, err
	}
	if v := getenv(EnvLinger); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("eventlog: %s=%q: %w", EnvLinger, v, err)
		}
		if d == 0 {
			d = -1 // "0" in the environment means no linger, not the default
		}
		cfg.Linger = d
	}
	return cfg, nil
}

// SCRAMFromEnv reads ASSENT_KAFKA_USER and ASSENT_KAFKA_PASSWORD_FILE:
// nil when neither is set, an error when only one is or the file cannot
// be read. The password itself is not kept: it is read at each
// authentication.
func SCRAMFromEnv(getenv func(string) string) (*SCRAM, error) {
	user, file := strings.TrimSpace(getenv(EnvUser)), strings.TrimSpace(getenv(EnvPasswordFile))
	switch {
	case user == "" && file == "":
		return nil, nil
	case file == "":
		return nil, fmt.Errorf("eventlog: %s is set but %s is not: name the file holding %s's password (scripts/kafka up writes them under .run/kafka/credentials)", EnvUser, EnvPasswordFile, user)
	case user == "":
		return nil, fmt.Errorf("eventlog: %s is set but %s is not: name the Kafka user the password is for", EnvPasswordFile, EnvUser)
	}
	s := &SCRAM{User: user, PasswordFile: file}
	if _, err := s.password(); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseBrokers splits a comma-separated broker list, trimming spaces and
// refusing empty entries.
func ParseBrokers(list string) ([]string, error) {
	var brokers []string
	for b := range strings.SplitSeq(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			return nil, fmt.Errorf("empty broker in %q", list)
		}
		brokers = append(brokers, b)
	}
	return brokers, nil
}

// Opts returns the kgo options for cfg with extra in the middle: cfg's
// tunables first (and the failover timings above), so extra may override
// them; then the guarantees Assent rests on, last, so nothing in extra can
// weaken them:
//
//   - acks=all (with min.insync.replicas=2 on the topics, a write is on two
//     brokers before it is acknowledged);
//   - read_committed fetching (aborted transactions are never seen);
//   - the Java-compatible murmur2 Partitioner.
//
// Idempotent writes are franz-go's default; NewClient and CheckClient
// refuse a client on which extra disabled them. Use Opts directly where a
// client is built from options, as kgo.NewGroupTransactSession is, and call
// CheckClient on the result.
func (cfg Config) Opts(extra ...kgo.Opt) ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("eventlog: no Kafka brokers configured")
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = "assent"
	}
	linger := cfg.Linger
	switch {
	case linger == 0:
		linger = DefaultLinger
	case linger < 0:
		linger = 0
	}
	dial := cfg.DialTimeout
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	delivery := cfg.RecordDeliveryTimeout
	if delivery == 0 {
		delivery = DefaultRecordDeliveryTimeout
	}
	probe := cfg.FencedBrokerProbe
	if probe == 0 {
		probe = DefaultFencedBrokerProbe
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	guard := guardFor(cfg.Brokers, probe, log)

	opts := []kgo.Opt{
		kgo.ClientID(clientID),
		kgo.ProducerLinger(linger),
		kgo.DialTimeout(dial), // what guard.dialer enforces; franz-go's own dialer is unused
		kgo.Dialer(guard.dialer(dial)),
		kgo.WithHooks(guard),
		kgo.RecordDeliveryTimeout(delivery),
		kgo.MetadataMinAge(DefaultMetadataMinAge),
		kgo.MetadataMaxAge(DefaultMetadataMaxAge),
		kgo.ProduceRequestTimeout(DefaultProduceRequestTimeout),
		kgo.RequestTimeoutOverhead(DefaultRequestTimeoutOverhead),
		kgo.RetryBackoffFn(retryBackoff),
	}
	if cfg.SCRAM != nil {
		opts = append(opts, cfg.SCRAM.Opt())
	}
	if cfg.LogLevel != kgo.LogLevelNone {
		opts = append(opts, kgo.WithLogger(kafkaLogger{log: log, level: cfg.LogLevel}))
	}
	opts = append(opts, extra...)
	return append(opts,
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(Partitioner()),
	), nil
}

// NewClient returns a franz-go client for cfg with the options described
// at Config.Opts. It does not connect: the first request does. Close it.
func NewClient(cfg Config, opts ...kgo.Opt) (*kgo.Client, error) {
	all, err := cfg.Opts(opts...)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: new client: %w", err)
	}
	if err := CheckClient(cl); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// CheckClient reports whether cl keeps the guarantees of Config.Opts: a
// client built elsewhere (a GroupTransactSession's, say) is checked here.
func CheckClient(cl *kgo.Client) error {
	var problems []string
	if v, _ := cl.OptValue(kgo.DisableIdempotentWrite).(bool); v {
		problems = append(problems, "idempotent writes are disabled")
	}
	if v, _ := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); v != kgo.AllISRAcks() {
		problems = append(problems, "acks is not all")
	}
	if !readCommitted(cl.OptValue(kgo.FetchIsolationLevel)) {
		problems = append(problems, "isolation level is not read_committed")
	}
	if _, ok := cl.OptValue(kgo.RecordPartitioner).(partitioner); !ok {
		problems = append(problems, "the partitioner is not eventlog.Partitioner")
	}
	if len(problems) > 0 {
		return fmt.Errorf("eventlog: unsafe Kafka client: %s", strings.Join(problems, "; "))
	}
	return nil
}

// readCommitted interprets OptValue(kgo.FetchIsolationLevel), which kgo
// v1.22 reports as the raw wire value (int8 1 for read_committed) rather
// than as a kgo.IsolationLevel.
func readCommitted(v any) bool {
	switch v := v.(type) {
	case kgo.IsolationLevel:
		return v == kgo.ReadCommitted()
	case int8:
		return v == 1
	}
	return false
}
