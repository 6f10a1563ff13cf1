package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The fault types, in the order a bounded run injects them.
const (
	FaultKillDecider     = "kill-decider"
	FaultKillAPI         = "kill-api"
	FaultKillGateway     = "kill-gateway"
	FaultPauseDecider    = "pause-decider"
	FaultKillBroker      = "kill-broker"
	FaultPartitionBroker = "partition-broker"
	// FaultKillController kills the active KRaft controller (-9).
	FaultKillController = "kill-controller"
	FaultRollingRestart = "rolling-restart"
	// FaultInsider appends forged decisions to the events topic with the
	// Kafka admin's credentials (Insider).
	FaultInsider = "insider"
	// FaultPauseAtExpiry stops a decider just before requests on its
	// partitions expire, past its session timeout (ExpiryPause).
	FaultPauseAtExpiry = "pause-at-expiry"
	// FaultHostile floods one request with refused votes (Hostile).
	FaultHostile = "hostile-client"
)

// AllFaults lists every fault type.
var AllFaults = []string{FaultKillDecider, FaultKillAPI, FaultKillGateway, FaultPauseDecider, FaultInsider,
	FaultPauseAtExpiry, FaultHostile, FaultKillBroker, FaultPartitionBroker, FaultKillController, FaultRollingRestart}

// ParseFaults reads a comma-separated list of fault types ("all" for every
// one).
func ParseFaults(s string) ([]string, error) {
	if s == "" || s == "all" {
		return slices.Clone(AllFaults), nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("chaos: unknown fault %q; the faults are %s", f, strings.Join(AllFaults, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// Fault is one injected fault.
type Fault struct {
	Name   string    `json:"name"`
	Target string    `json:"target"`
	Start  time.Time `json:"start"`
	Healed time.Time `json:"healed"` // the process restarted, the network healed
	End    time.Time `json:"end"`    // after the quiet period that followed
	Note   string    `json:"note,omitempty"`
	Err    string    `json:"error,omitempty"`
}

// Nemesis injects faults into a running system.
type Nemesis struct {
	Deciders, APIs, Gateways []*Proc
	Cluster                  *Cluster // nil: no broker faults
	Insider                  *Insider // nil: no insider fault
	Expiry                   *ExpiryPause
	Hostile                  *Hostile
	// Hold is how long a killed process stays down, and Pause how long a
	// decider stays stopped (more than its session timeout: 1.5s on the
	// suite's own cluster, the decider's 6s default on one it is given).
	Hold, Pause, BrokerHold, PartitionHold time.Duration
	Logf                                   func(string, ...any)
	// Broker, if set, picks the Kafka node (1-3) a broker fault hits;
	// otherwise it is picked at random.
	Broker func() int
	rng    *rand.Rand
}

func (n *Nemesis) broker() int {
	if n.Broker != nil {
		return n.Broker()
	}
	return 1 + n.intn(3)
}

func (n *Nemesis) intn(k int) int {
	if n.rng == nil {
		n.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)) //nolint:gosec // G404: which fault comes next, not a secret
	}
	return n.rng.IntN(k)
}

func (n *Nemesis) pick(ps []*Proc) *Proc { return ps[n.intn(len(ps))] }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// readyAll waits until every process answers /readyz, bounded.
func readyAll(ctx context.Context, ps ...*Proc) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	for _, p := range ps {
		if err := p.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Inject runs one fault to its end (the restart or the heal) and returns
// what it did.
func (n *Nemesis) Inject(ctx context.Context, name string) Fault {
	f := Fault{Name: name, Start: time.Now()}
	var err error
	killRestart := func(p *Proc) {
		f.Target = p.Name
		p.Kill()
		sleep(ctx, n.Hold)
		if err = p.Start(); err == nil {
			err = readyAll(ctx, p)
		}
	}
	switch name {
	case FaultKillDecider:
		killRestart(n.pick(n.Deciders))
	case FaultKillAPI:
		killRestart(n.pick(n.APIs))
	case FaultKillGateway:
		killRestart(n.pick(n.Gateways))
	case FaultPauseDecider:
		// The decider that owns the most partitions: a zombie once its
		// session times out, which must be fenced when it wakes.
		p := busiest(n.Deciders)
		f.Target = fmt.Sprintf("%s (owned partitions %v)", p.Name, p.Owned())
		if err = p.Pause(); err == nil {
			sleep(ctx, n.Pause)
			err = p.Resume()
			f.Note = fmt.Sprintf("SIGSTOP for %s, then SIGCONT", n.Pause)
		}
	case FaultKillBroker:
		if n.Cluster == nil {
			err = fmt.Errorf("chaos: %s needs the suite's own cluster", name)
			break
		}
		b := n.broker()
		f.Target = fmt.Sprintf("kafka broker %d", b)
		n.Cluster.Kill(b)
		sleep(ctx, n.BrokerHold)
		err = n.Cluster.Start(b)
	case FaultPartitionBroker:
		if n.Cluster == nil {
			err = fmt.Errorf("chaos: %s needs the suite's own cluster", name)
			break
		}
		b := n.broker()
		f.Target = fmt.Sprintf("kafka broker %d, cut off from the cluster", b)
		if err = n.Cluster.Partition(ctx, b); err == nil {
			sleep(ctx, n.PartitionHold)
			err = n.Cluster.Heal(context.WithoutCancel(ctx), b)
		}
	case FaultKillController:
		if n.Cluster == nil {
			err = fmt.Errorf("chaos: %s needs the suite's own cluster", name)
			break
		}
		k, qerr := n.Cluster.ActiveController(ctx)
		f.Target = fmt.Sprintf("kafka controller %d, the active one", k)
		if qerr != nil {
			k = 1
			f.Target = "kafka controller 1"
			f.Note = fmt.Sprintf("the active controller was not found (%v)", qerr)
		}
		n.Cluster.KillController(k)
		sleep(ctx, n.BrokerHold)
		err = n.Cluster.StartController(k)
	case FaultInsider:
		if n.Insider == nil {
			err = fmt.Errorf("chaos: %s needs an Insider", name)
			break
		}
		f.Target = fmt.Sprintf("%s, with the Kafka admin's credentials", n.Insider.Topic)
		f.Note, err = n.Insider.Inject(ctx)
	case FaultPauseAtExpiry:
		if n.Expiry == nil {
			err = fmt.Errorf("chaos: %s needs an ExpiryPause", name)
			break
		}
		f.Target, f.Note, err = n.Expiry.Inject(ctx)
	case FaultHostile:
		if n.Hostile == nil {
			err = fmt.Errorf("chaos: %s needs a Hostile client", name)
			break
		}
		f.Target, f.Note, err = n.Hostile.Inject(ctx)
		f.Target = "request " + f.Target + ", by " + mallory.principal
	case FaultRollingRestart:
		var names []string
		for _, p := range slices.Concat(n.Deciders, n.APIs, n.Gateways) {
			names = append(names, p.Name)
			p.Stop()
			if err = p.Start(); err == nil {
				err = readyAll(ctx, p)
			}
			if err != nil {
				break
			}
		}
		f.Target = strings.Join(names, ", ")
		f.Note = "SIGTERM, restart, ready, one at a time"
	default:
		err = fmt.Errorf("chaos: unknown fault %q", name)
	}
	f.Healed = time.Now()
	if err != nil {
		f.Err = err.Error()
	}
	if n.Logf != nil {
		n.Logf("fault %s on %s: %s", f.Name, f.Target, f.Healed.Sub(f.Start).Round(time.Millisecond))
	}
	return f
}
