package projection

import (
	"fmt"
	"log/slog"
	"os"
)

// pebbleLogger sends Pebble's messages to the service's slog logger, so
// that they come out as JSON with everything else rather than as plain
// text on stderr. Pebble's informational messages (WAL replay, compaction
// notes) are debug noise to an operator; its errors are errors.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return: Pebble calls it when it cannot go on safely,
// and its default logger exits the process too.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "fatal", true)
	os.Exit(1)
}
