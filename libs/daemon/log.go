package daemon

import (
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a JSON logger writing to w at the level named by
// ASSENT_LOG_LEVEL (debug, info, warn, error; default info), with the
// service and instance on every line.
func NewLogger(w io.Writer, level, svc, instance string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).
		With("service", svc, "instance", instance)
}
