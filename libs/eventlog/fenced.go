package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultFencedBrokerProbe is how often a client asks each broker which
// brokers the cluster has (Config.FencedBrokerProbe).
//
// A broker cut off from the other brokers and the controllers, but not
// from its clients, does not know that the controller fenced it and moved
// its leaderships and coordinators away: it keeps answering as a leader
// and a coordinator, holding produces and transactions it cannot
// replicate until the client's timeouts (DefaultProduceRequestTimeout,
// DefaultRequestTimeoutOverhead), and its stale metadata keeps sending
// the client back to it. The other brokers stop listing it in their
// metadata as soon as it is fenced. A client that sees every other
// broker leave it out treats it as dead: it closes its connections to it,
// which fails what is in flight there at once; refreshes its metadata at
// once, which names the new leaders and coordinators (franz-go retries
// there); and refuses to dial it, as a killed broker would, until another
// broker lists it again (docs/architecture.md, "Failover"). Each probe is
// a Metadata request for no topic.
const DefaultFencedBrokerProbe = 500 * time.Millisecond

// fencedCuts counts the times a client of this process cut its
// connections to a broker the others no longer listed.
var fencedCuts atomic.Int64

// FencedBrokerCuts is how many times, in this process, a client closed
// its connections to a broker that the other brokers no longer list
// (assent_kafka_fenced_broker_cuts_total).
func FencedBrokerCuts() int64 { return fencedCuts.Load() }

// brokerGuard is the dialer and the watch that keep a process's clients
// of one cluster from its fenced brokers: one per cluster and probe
// period (guardFor), shared by every client built for them, so that a
// process probes each broker once a period however many clients it has
// (the benchmark's floor opens a hundred). It is each client's kgo.Dialer
// and a hook: the watch runs while one of its clients is open.
type brokerGuard struct {
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	conns   map[string]map[*guardedConn]struct{} // open connections by address
	fenced  map[string]int32                     // address -> broker id, refused
	known   map[int32]string                     // every broker connected to or listed, id -> address
	clients []*kgo.Client                        // open clients built with the guard
	stop    context.CancelFunc
	done    chan struct{}
}

// guards holds the process's brokerGuards by cluster and probe period.
var guards struct {
	sync.Mutex
	m map[guardKey]*brokerGuard
}

type guardKey struct {
	seeds string
	every time.Duration
}

// guardFor returns the process's guard for the cluster seeds name,
// probing every period; log is where the first client asked for it logs.
func guardFor(seeds []string, every time.Duration, log *slog.Logger) *brokerGuard {
	k := guardKey{seeds: strings.Join(slices.Sorted(slices.Values(seeds)), ","), every: every}
	guards.Lock()
	defer guards.Unlock()
	if g := guards.m[k]; g != nil {
		return g
	}
	g := &brokerGuard{
		every:  every,
		log:    log,
		conns:  map[string]map[*guardedConn]struct{}{},
		fenced: map[string]int32{},
		known:  map[int32]string{},
	}
	if guards.m == nil {
		guards.m = map[guardKey]*brokerGuard{}
	}
	guards.m[k] = g
	return g
}

// dialer is a client's kgo.Dialer, with its own dial timeout.
func (g *brokerGuard) dialer(timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return g.dial(ctx, d, network, addr)
	}
}

// errFenced is why a fenced broker is not dialed. It unwraps to
// ECONNREFUSED inside a dial net.OpError, which is how franz-go sees a
// killed broker: the produce or fetch is moved to the partition's new
// leader, the coordinator request to the new coordinator.
type errFenced struct {
	id   int32
	addr string
}

func (e *errFenced) Error() string {
	return fmt.Sprintf("Kafka broker %d (%s) is fenced: the other brokers no longer list it, so it is not dialed until one does again", e.id, e.addr)
}

func (e *errFenced) Unwrap() error { return os.NewSyscallError("connect", syscall.ECONNREFUSED) }

// dial dials addr with d unless it is fenced.
func (g *brokerGuard) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if id, ok := g.isFenced(addr); ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &errFenced{id: id, addr: addr}}
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	gc := &guardedConn{Conn: c, g: g, addr: addr}
	g.mu.Lock()
	id, fenced := g.fenced[addr]
	if !fenced {
		if g.conns[addr] == nil {
			g.conns[addr] = map[*guardedConn]struct{}{}
		}
		g.conns[addr][gc] = struct{}{}
	}
	g.mu.Unlock()
	if fenced { // fenced while dialing
		_ = c.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: &errFenced{id: id, addr: addr}}
	}
	return gc, nil
}

func (g *brokerGuard) isFenced(addr string) (int32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.fenced[addr]
	return id, ok
}

// guardedConn is a connection the guard can close.
type guardedConn struct {
	net.Conn
	g    *brokerGuard
	addr string
	once sync.Once
}

func (c *guardedConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns[c.addr], c)
		if len(c.g.conns[c.addr]) == 0 {
			delete(c.g.conns, c.addr)
		}
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

// OnNewClient starts the watch with the first client built with the
// guard (kgo.HookNewClient).
func (g *brokerGuard) OnNewClient(cl *kgo.Client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.clients = append(g.clients, cl)
	if g.stop != nil || g.every <= 0 {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	g.stop, g.done = stop, make(chan struct{})
	go g.watch(ctx, g.done)
}

// OnBrokerConnect makes every broker a client of the guard connects to
// one the watch asks, and judges (kgo.HookBrokerConnect): the brokers a
// probe's answers list are not enough, since the brokers that fenced one
// no longer list it. Seed connections (negative ids) name no broker.
func (g *brokerGuard) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil || meta.NodeID < 0 {
		return
	}
	g.mu.Lock()
	g.known[meta.NodeID] = brokerAddr(meta.Host, meta.Port)
	g.mu.Unlock()
}

// OnClientClosed stops the watch when the last client built with the
// guard is closed (kgo.HookClientClosed), and forgets what it found: with
// nothing watching, it could not tell when a fenced broker is back.
func (g *brokerGuard) OnClientClosed(cl *kgo.Client) {
	g.mu.Lock()
	g.clients = slices.DeleteFunc(g.clients, func(c *kgo.Client) bool { return c == cl })
	stop, done := g.stop, g.done
	last := len(g.clients) == 0 && stop != nil
	if last {
		g.stop, g.done = nil, nil
	}
	g.mu.Unlock()
	if !last {
		return
	}
	stop()
	<-done
	g.mu.Lock()
	if g.stop == nil {
		g.fenced, g.known = map[string]int32{}, map[int32]string{}
	}
	g.mu.Unlock()
}

func (g *brokerGuard) client() *kgo.Client {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.clients) == 0 {
		return nil
	}
	return g.clients[0]
}

// watch probes the brokers every g.every until ctx ends.
func (g *brokerGuard) watch(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cl := g.client()
		if cl == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(g.every, fencedProbeWait))
		g.probe(pctx, cl)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// fencedProbeWait is the longest a round waits for the brokers' answers
// (or the probe period, if longer). A broker cut off from the cluster
// holds the probe behind the requests it cannot complete, so the answers
// of the others are judged as they come, without waiting for it.
const fencedProbeWait = time.Second

// probe asks every broker seen so far, except those fenced already,
// which brokers the cluster has, until ctx ends; the first time, it asks
// any broker who they are. Each answer is judged as it comes, to fence
// (one other broker leaving a broker out is enough while no answer lists
// it); the round's answers together are judged at its end, which can
// also let a broker go again (judge).
func (g *brokerGuard) probe(ctx context.Context, cl *kgo.Client) {
	g.mu.Lock()
	var ids []int32
	for id, addr := range g.known {
		if _, fenced := g.fenced[addr]; !fenced {
			ids = append(ids, id)
		}
	}
	g.mu.Unlock()
	if len(ids) == 0 {
		if resp, err := metadataFor(ctx, cl); err == nil {
			g.mu.Lock()
			for id, addr := range resp {
				g.known[id] = addr
			}
			g.mu.Unlock()
		}
		return
	}
	type answer struct {
		from   int32
		listed map[int32]string
	}
	got := make(chan answer, len(ids))
	for _, id := range ids {
		go func() {
			listed, _ := metadataFor(ctx, cl.Broker(int(id))) // nil if it did not answer
			got <- answer{from: id, listed: listed}
		}()
	}
	answers := map[int32]map[int32]string{}
	for range ids {
		a := <-got // each probe ends with ctx at the latest
		if a.listed != nil {
			answers[a.from] = a.listed
			g.judge(answers, false)
		}
	}
	g.judge(answers, true)
}

// metadataFor asks r (a client, or one of its brokers) for the brokers
// the cluster lists, by id: a Metadata request for no topic.
func metadataFor(ctx context.Context, r kmsg.Requestor) (map[int32]string, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // none; nil is all of them
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return nil, err
	}
	listed := make(map[int32]string, len(resp.Brokers))
	for _, b := range resp.Brokers {
		listed[b.NodeID] = brokerAddr(b.Host, b.Port)
	}
	return listed, nil
}

// brokerAddr is a broker's address as franz-go dials it.
func brokerAddr(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// judge fences what the answers say is fenced, and, if release, lets go
// of what they say is back; it closes the connections to a newly fenced
// broker.
func (g *brokerGuard) judge(answers map[int32]map[int32]string, release bool) {
	g.mu.Lock()
	for _, listed := range answers {
		for id, addr := range listed {
			g.known[id] = addr
		}
	}
	now := fencedOf(g.known, answers, g.fenced)
	if !release {
		maps.Copy(now, g.fenced)
	}
	var cut []*guardedConn
	var newly, back []string
	for addr, id := range now {
		if _, was := g.fenced[addr]; !was {
			newly = append(newly, addr+" (broker "+strconv.Itoa(int(id))+")")
			for c := range g.conns[addr] {
				cut = append(cut, c)
			}
		}
	}
	for addr := range g.fenced {
		if _, still := now[addr]; !still {
			back = append(back, addr)
		}
	}
	g.fenced = now
	var refresh []*kgo.Client
	if len(newly) > 0 {
		refresh = slices.Clone(g.clients)
	}
	g.mu.Unlock()

	for _, c := range cut {
		_ = c.Close()
	}
	// The brokers that stopped listing the fenced one list the partitions'
	// and coordinators' new leaders too. A client learns them from its
	// next metadata refresh, which otherwise waits for an error it may not
	// get (a produce to a dead broker is only retried there) or for the
	// metadata's maximum age (DefaultMetadataMaxAge, 2 s): every batch
	// held for the fenced broker would wait that long.
	for _, cl := range refresh {
		cl.ForceMetadataRefresh()
	}
	for _, b := range newly {
		fencedCuts.Add(1)
		g.log.Warn("eventlog: a Kafka broker is fenced (no other broker lists it): closed this client's connections to it; it is not dialed until it is listed again",
			"broker", b, "connections_closed", len(cut))
	}
	for _, addr := range back {
		g.log.Info("eventlog: a fenced Kafka broker is listed again; dialing it", "broker", addr)
	}
}

// fencedOf is the brokers, by address, that the answers say the cluster
// has fenced. A known broker is fenced when at least one other broker
// answered and none of those lists it (neither its id nor its address); a
// broker fenced before stays fenced until another broker lists it again,
// so a round in which the others were too slow to answer changes nothing.
// A broker's answer says nothing of itself: one cut off from the
// controllers still lists itself.
func fencedOf(known map[int32]string, answers map[int32]map[int32]string, before map[string]int32) map[string]int32 {
	fenced := map[string]int32{}
	for id, addr := range known {
		others, listed := 0, false
		for from, l := range answers {
			if from == id {
				continue
			}
			others++
			if _, ok := l[id]; ok {
				listed = true
			}
			for _, a := range l {
				listed = listed || a == addr
			}
		}
		_, was := before[addr]
		if !listed && (others > 0 || was) {
			fenced[addr] = id
		}
	}
	return fenced
}
