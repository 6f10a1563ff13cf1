package eventlog

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFencedOf(t *testing.T) {
	known := map[int32]string{1: "b1:9092", 2: "b2:9092", 3: "b3:9092"}
	all := map[int32]string{1: "b1:9092", 2: "b2:9092", 3: "b3:9092"}
	twoThree := map[int32]string{2: "b2:9092", 3: "b3:9092"}
	for _, tc := range []struct {
		name    string
		answers map[int32]map[int32]string
		before  map[string]int32
		want    map[string]int32
	}{
		{"all listed", map[int32]map[int32]string{1: all, 2: all, 3: all}, nil, map[string]int32{}},
		{"cut off: it lists itself, the others do not",
			map[int32]map[int32]string{1: all, 2: twoThree, 3: twoThree}, nil, map[string]int32{"b1:9092": 1}},
		{"one other answered in time", map[int32]map[int32]string{2: twoThree}, nil, map[string]int32{"b1:9092": 1}},
		{"only itself answered: nothing is known of it", map[int32]map[int32]string{1: all}, nil, map[string]int32{}},
		{"one other still lists it (metadata not yet everywhere)",
			map[int32]map[int32]string{2: twoThree, 3: all}, nil, map[string]int32{}},
		{"fenced stays fenced through a round nobody answered", nil,
			map[string]int32{"b1:9092": 1}, map[string]int32{"b1:9092": 1}},
		{"fenced stays fenced while only it would list itself",
			map[int32]map[int32]string{1: all}, map[string]int32{"b1:9092": 1}, map[string]int32{"b1:9092": 1}},
		{"back once another lists it", map[int32]map[int32]string{2: all, 3: twoThree},
			map[string]int32{"b1:9092": 1}, map[string]int32{}},
		{"back when its address is listed under another id",
			map[int32]map[int32]string{2: {2: "b2:9092", 3: "b3:9092", 4: "b1:9092"}},
			map[string]int32{"b1:9092": 1}, map[string]int32{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, fencedOf(known, tc.answers, tc.before))
		})
	}
}

// TestGuardClosesAndRefusesAFencedBroker: a broker judged fenced loses
// its open connections at once and is refused as a killed broker is (a
// dial error franz-go retries on another broker), until it is listed again.
func TestGuardClosesAndRefusesAFencedBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	addr := ln.Addr().String()
	g := guardFor([]string{addr, "test-" + t.Name()}, -1, slog.New(slog.DiscardHandler))
	dial := g.dialer(time.Second)
	ctx := t.Context()

	c1, err := dial(ctx, "tcp", addr)
	require.NoError(t, err)
	c2, err := dial(ctx, "tcp", addr)
	require.NoError(t, err)
	cuts := FencedBrokerCuts()

	others := map[int32]string{2: "other:9092"}
	g.judge(map[int32]map[int32]string{1: {1: addr, 2: "other:9092"}, 2: others}, true) // 2 no longer lists 1
	require.Equal(t, cuts+1, FencedBrokerCuts())
	for _, c := range []net.Conn{c1, c2} {
		_, err := c.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed, "a connection to the fenced broker is closed")
	}

	_, err = dial(ctx, "tcp", addr)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "dial", op.Op)
	require.False(t, op.Timeout())
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	var sys *os.SyscallError
	require.ErrorAs(t, err, &sys, "franz-go takes a dial error with a syscall error inside for a dead broker")
	require.Contains(t, err.Error(), "fenced")

	g.judge(map[int32]map[int32]string{2: others}, true) // still not listed
	_, err = dial(ctx, "tcp", addr)
	require.Error(t, err)

	g.judge(map[int32]map[int32]string{2: {1: addr, 2: "other:9092"}}, false) // listed, but a round is not over
	_, err = dial(ctx, "tcp", addr)
	require.Error(t, err, "only a round's end lets a broker go")
	g.judge(map[int32]map[int32]string{2: {1: addr, 2: "other:9092"}}, true) // listed again
	c3, err := dial(ctx, "tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c3.Close())
	require.Equal(t, cuts+1, FencedBrokerCuts())
}

// TestClientLetsGoOfABrokerTheOthersNoLongerList: a real franz-go client
// on a three-broker kfake cluster whose brokers 1 and 2 stop listing broker
// 0 (as the brokers of a cluster whose controller fenced it do, while
// broker 0, cut off, still lists itself): the client's watch closes its
// connections to broker 0, then dials it again once it is listed again.
func TestClientLetsGoOfABrokerTheOthersNoLongerList(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	require.NoError(t, err)
	t.Cleanup(c.Close)

	var disconnected atomic.Int32
	hook := disconnectHook(func(m kgo.BrokerMetadata) {
		if m.NodeID == 0 {
			disconnected.Add(1)
		}
	})
	cfg := Config{Brokers: c.ListenAddrs(), FencedBrokerProbe: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	cl, err := NewClient(cfg, kgo.WithHooks(hook))
	require.NoError(t, err)
	t.Cleanup(cl.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	all, err := metadataFor(ctx, cl)
	require.NoError(t, err)
	require.Len(t, all, 3)
	addr0 := all[0]
	_, err = metadataFor(ctx, cl.Broker(0)) // a connection to broker 0
	require.NoError(t, err)

	var fenced atomic.Bool
	fenced.Store(true)
	unlistBroker0(c, all, &fenced, nil)

	g := guardFor(cfg.Brokers, cfg.FencedBrokerProbe, nil)
	cuts := FencedBrokerCuts()
	waitFor(t, ctx, "broker 0 fenced", func() bool { _, f := g.isFenced(addr0); return f })
	waitFor(t, ctx, "the connection to broker 0 closed", func() bool { return disconnected.Load() > 0 })
	require.Equal(t, cuts+1, FencedBrokerCuts())
	_, err = metadataFor(ctx, cl.Broker(0))
	require.Error(t, err, "broker 0 is not dialed while fenced")

	fenced.Store(false)
	waitFor(t, ctx, "broker 0 listed again", func() bool { _, f := g.isFenced(addr0); return !f })
	var back map[int32]string
	waitFor(t, ctx, "broker 0 answers again", func() bool {
		back, err = metadataFor(ctx, cl.Broker(0))
		return err == nil
	})
	require.Len(t, back, 3)
}

// unlistBroker0 makes kfake's brokers other than 0 leave broker 0 out of
// their answers to a Metadata request for no topic (the watch's probe)
// while fenced holds, as the brokers of a cluster whose controller fenced
// it do; broker 0 still lists itself. topicMetadata, if set, is called for
// each Metadata request for topics while fenced holds.
func unlistBroker0(c *kfake.Cluster, all map[int32]string, fenced *atomic.Bool, topicMetadata func()) {
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		m := req.(*kmsg.MetadataRequest)
		if len(m.Topics) > 0 && fenced.Load() && topicMetadata != nil {
			topicMetadata()
		}
		if !fenced.Load() || c.CurrentNode() == 0 || m.Topics == nil || len(m.Topics) > 0 {
			return nil, nil, false
		}
		resp := m.ResponseKind().(*kmsg.MetadataResponse)
		for id, a := range all {
			if id == 0 {
				continue
			}
			host, port, _ := net.SplitHostPort(a)
			p, _ := strconv.ParseInt(port, 10, 32)
			b := kmsg.NewMetadataResponseBroker()
			b.NodeID, b.Host, b.Port = id, host, int32(p)
			resp.Brokers = append(resp.Brokers, b)
		}
		resp.ControllerID = 1
		return resp, nil, true
	})
}

type disconnectHook func(kgo.BrokerMetadata)

func (h disconnectHook) OnBrokerDisconnect(m kgo.BrokerMetadata, _ net.Conn) { h(m) }

// waitFor polls cond every 20ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the test's time: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestClientRefreshesItsMetadataWhenABrokerIsFenced: the brokers that stop
// listing a fenced broker name its partitions' new leaders, so a client
// whose watch finds a broker fenced asks for the metadata of its topics at
// once, not when the metadata's maximum age runs out: a batch held for a
// killed leader is otherwise retried there, and never errs into a refresh.
// Here the maximum age is a minute, so only the fence can ask.
func TestClientRefreshesItsMetadataWhenABrokerIsFenced(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)

	cfg := Config{Brokers: c.ListenAddrs(), FencedBrokerProbe: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	cl, err := NewClient(cfg, kgo.MetadataMaxAge(time.Minute), kgo.DefaultProduceTopic("t"))
	require.NoError(t, err)
	t.Cleanup(cl.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr())
	all, err := metadataFor(ctx, cl)
	require.NoError(t, err)
	addr0 := all[0]

	var fenced atomic.Bool
	var topicRefreshes atomic.Int32
	unlistBroker0(c, all, &fenced, func() { topicRefreshes.Add(1) })

	g := guardFor(cfg.Brokers, cfg.FencedBrokerProbe, nil)
	fenced.Store(true)
	waitFor(t, ctx, "broker 0 fenced", func() bool { _, f := g.isFenced(addr0); return f })
	waitFor(t, ctx, "the client asks for its topic's metadata", func() bool { return topicRefreshes.Load() > 0 })
}
