package daemon

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads settings from a getenv function (os.Getenv in main, a map in
// tests) and collects every problem, so that a misconfigured service says
// everything that is wrong at once.
type Env struct {
	get  func(string) string
	errs []error
}

// NewEnv wraps getenv.
func NewEnv(getenv func(string) string) *Env { return &Env{get: getenv} }

// String returns the value of key, or def when it is unset.
func (e *Env) String(key, def string) string {
	if v := strings.TrimSpace(e.get(key)); v != "" {
		return v
	}
	return def
}

// Required returns the value of key and records an error when it is unset.
func (e *Env) Required(key, hint string) string {
	v := strings.TrimSpace(e.get(key))
	if v == "" {
		e.errs = append(e.errs, fmt.Errorf("%s is not set; %s", key, hint))
	}
	return v
}

// Duration parses a Go duration ("5s", "1m30s").
func (e *Env) Duration(key string, def time.Duration) time.Duration {
	v := strings.TrimSpace(e.get(key))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not a duration such as 5s or 1m30s", key, v))
		return def
	}
	return d
}

// Int parses a whole number within [lo, hi].
func (e *Env) Int(key string, def, lo, hi int) int {
	v := strings.TrimSpace(e.get(key))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.errs = append(e.errs, fmt.Errorf("%s=%q must be a whole number from %d to %d", key, v, lo, hi))
		return def
	}
	return n
}

// Add records each non-nil err among the problems: the errors of other
// loaders (Kafka settings, topics, key files) join the same report.
func (e *Env) Add(errs ...error) {
	for _, err := range errs {
		if err != nil {
			e.errs = append(e.errs, err)
		}
	}
}

// Problem records a problem that the caller found, in words that say how
// to fix it.
func (e *Env) Problem(format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf(format, args...))
}

// Err returns nil, or every problem found so far, one per indented line
// under "configuration:".
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return &ConfigError{Problems: e.errs}
}

// ConfigError is every problem with a service's configuration.
type ConfigError struct {
	Problems []error
}

func (c *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("configuration:")
	for _, p := range c.Problems {
		for line := range strings.Lines(p.Error()) {
			b.WriteString("\n  ")
			b.WriteString(strings.TrimRight(line, "\n"))
		}
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see each problem.
func (c *ConfigError) Unwrap() []error { return c.Problems }

// Instance returns ASSENT_INSTANCE_ID, or "<svc>-<host>-<http port>": a
// name unique per replica on one host, since two replicas cannot share a
// port. It names the Kafka client, the transactional id and the data dir.
func (e *Env) Instance(svc, httpAddr string) string {
	host, _ := os.Hostname()
	_, port, _ := strings.Cut(httpAddr, ":")
	return e.String("ASSENT_INSTANCE_ID", fmt.Sprintf("%s-%s-%s", svc, host, port))
}
