package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvKafkaLogLevel names the level of franz-go's own log (ConfigFromEnv):
// none (the default), error, warn, info or debug. It is a diagnostic: info
// logs every group join, assignment, heartbeat failure, metadata change
// and retried request, which is what says where the seconds of a failover
// went (docs/architecture.md, "Failover"); debug also logs every request.
const EnvKafkaLogLevel = "ASSENT_KAFKA_LOG_LEVEL"

// ParseKafkaLogLevel reads a franz-go log level by name.
func ParseKafkaLogLevel(s string) (kgo.LogLevel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "off":
		return kgo.LogLevelNone, nil
	case "error":
		return kgo.LogLevelError, nil
	case "warn", "warning":
		return kgo.LogLevelWarn, nil
	case "info":
		return kgo.LogLevelInfo, nil
	case "debug":
		return kgo.LogLevelDebug, nil
	}
	return kgo.LogLevelNone, fmt.Errorf("eventlog: %s=%q: want none, error, warn, info or debug", EnvKafkaLogLevel, s)
}

// kafkaLogger writes franz-go's log to a slog.Logger, as the service's
// other lines, with "kafka" naming the source.
type kafkaLogger struct {
	log   *slog.Logger
	level kgo.LogLevel
}

func (l kafkaLogger) Level() kgo.LogLevel { return l.level }

func (l kafkaLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var lv slog.Level
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	case kgo.LogLevelInfo, kgo.LogLevelDebug, kgo.LogLevelNone:
		lv = slog.LevelInfo
	}
	// franz-go's info and debug lines are logged at slog's info level: the
	// level asked for in ASSENT_KAFKA_LOG_LEVEL is the filter, not the
	// service's.
	l.log.Log(context.Background(), lv, msg, append([]any{"kafka", level.String()}, keyvals...)...)
}
