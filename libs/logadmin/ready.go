package logadmin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Readiness is one look at the cluster: how many brokers are registered
// and which partitions lack a leader or a full ISR.
type Readiness struct {
	Brokers     int // brokers registered (alive and unfenced, in KRaft)
	WantBrokers int
	Partitions  int      // partitions looked at
	Leaderless  int      // partitions without a leader
	NotFullISR  int      // partitions whose ISR is smaller than their replica set (leaderless included)
	Examples    []string // up to 5 unready partitions, "topic/p: why"
}

// Ready reports whether the cluster is fit for use.
func (r Readiness) Ready() bool {
	return r.Brokers >= r.WantBrokers && r.Leaderless == 0 && r.NotFullISR == 0
}

// String renders e.g. "2/3 brokers, 4 partitions without full ISR (1
// without leader)".
func (r Readiness) String() string {
	s := fmt.Sprintf("%d/%d brokers, %d partitions without full ISR", r.Brokers, r.WantBrokers, r.NotFullISR)
	if r.Leaderless > 0 {
		s += fmt.Sprintf(" (%d without leader)", r.Leaderless)
	}
	if len(r.Examples) > 0 {
		s += ": " + strings.Join(r.Examples, ", ")
	}
	return s
}

// CheckReady looks at the cluster once. nodes is the number of brokers
// expected (0: do not check). With no topics it checks every topic, the
// internal ones (__consumer_offsets, __transaction_state) included.
func CheckReady(ctx context.Context, adm *kadm.Client, nodes int, topics ...string) (Readiness, error) {
	md, err := freshMetadata(ctx, adm, topics...)
	if err != nil {
		return Readiness{WantBrokers: nodes}, fmt.Errorf("eventlog: metadata: %w", err)
	}
	r := Readiness{Brokers: len(md.Brokers), WantBrokers: nodes}
	for _, td := range md.Topics.Sorted() {
		if td.Err != nil {
			r.add(fmt.Sprintf("%s: %v", td.Topic, td.Err), true)
			continue
		}
		for _, p := range td.Partitions.Sorted() {
			r.Partitions++
			switch {
			case p.Leader < 0:
				r.add(fmt.Sprintf("%s/%d: no leader", td.Topic, p.Partition), true)
			case p.Err != nil:
				r.add(fmt.Sprintf("%s/%d: %v", td.Topic, p.Partition, p.Err), false)
			case !sameSet(p.ISR, p.Replicas):
				r.add(fmt.Sprintf("%s/%d: ISR %v of replicas %v", td.Topic, p.Partition, p.ISR, p.Replicas), false)
			}
		}
	}
	return r, nil
}

func (r *Readiness) add(example string, leaderless bool) {
	if leaderless {
		r.Leaderless++
	}
	r.NotFullISR++
	if len(r.Examples) < 5 {
		r.Examples = append(r.Examples, example)
	}
}

func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// WaitReady waits until nodes brokers are registered and every partition
// of every topic has a leader and a full ISR. It polls with backoff until
// ctx ends; give ctx a deadline.
func WaitReady(ctx context.Context, adm *kadm.Client, nodes int) error {
	return PollReady(ctx, adm, nodes, nil, nil)
}

// PollReady is WaitReady limited to topics (all if none), calling progress,
// if not nil, after every look at the cluster that is not yet ready.
func PollReady(ctx context.Context, adm *kadm.Client, nodes int, topics []string, progress func(Readiness, error)) error {
	const (
		minBackoff = 100 * time.Millisecond
		maxBackoff = time.Second
		perCheck   = 5 * time.Second
	)
	backoff := minBackoff
	for {
		cctx, cancel := context.WithTimeout(ctx, perCheck)
		r, err := CheckReady(cctx, adm, nodes, topics...)
		cancel()
		if err == nil && r.Ready() {
			return nil
		}
		if progress != nil {
			progress(r, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			if err != nil {
				return fmt.Errorf("eventlog: cluster not ready: %w (last error: %w)", ctx.Err(), err)
			}
			return fmt.Errorf("eventlog: cluster not ready: %s: %w", r, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
