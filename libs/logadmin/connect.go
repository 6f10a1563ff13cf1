package logadmin

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/eventlog"
)

// Connect is how a service starts: NewClient, then CheckTopics, within
// 30 seconds. It refuses to start on topics that differ from spec, and the
// client is closed on any error.
func Connect(ctx context.Context, cfg eventlog.Config, spec eventlog.TopicSpec) (*kgo.Client, error) {
	cl, err := eventlog.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := CheckTopics(ctx, kadm.NewClient(cl), spec); err != nil {
		cl.Close()
		return nil, fmt.Errorf("topics: %w", err)
	}
	return cl, nil
}
