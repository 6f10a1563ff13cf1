// Package kafkaproxy puts a proxy between one client and a real Kafka
// cluster, so that a test can make Kafka unreachable for that client only,
// without touching the shared cluster.
//
// # Why it reads the protocol
//
// A plain TCP proxy in front of the seed brokers is not enough: a Kafka
// client asks the seeds for the cluster's metadata and then connects to
// the addresses the brokers advertise, around the proxy. This proxy
// forwards every request byte for byte (SASL's handshake and tokens
// included, so an authenticating client authenticates to the brokers
// themselves), but rewrites the broker addresses
// in the answers that carry them (Metadata, FindCoordinator,
// DescribeCluster) to listeners of its own, one per broker, so that every
// connection the client makes goes through it.
//
// # Faults
//
// Cut closes every listener and connection: dials are refused, as when
// every broker is down. Stall keeps connections open but forwards nothing
// more in either direction, and accepts new connections without
// forwarding them: a network partition, where requests time out. Restore
// ends either fault; the listeners come back on the same ports.
package kafkaproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/assent-dev/assent/test/tb"
)

// maxFrame bounds one request or response (a fetch answer is at most
// fetch.max.bytes, 50 MiB by default).
const maxFrame = 256 << 20

// Proxy is the proxy. Its zero value is not usable: call New.
type Proxy struct {
	t tb.TB

	mu        sync.Mutex
	cond      *sync.Cond
	listeners map[string]*listener // by the real broker address
	seeds     []string
	conns     map[net.Conn]struct{}
	cut       bool
	stalled   bool
	closed    bool
	wg        sync.WaitGroup
}

type listener struct {
	real  string // the broker's address
	local string // ours
	ln    net.Listener
}

// New starts a proxy in front of the seed brokers and closes it when the
// test ends.
func New(t tb.TB, brokers []string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, listeners: map[string]*listener{}, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range brokers {
		l, err := p.listenLocked(b)
		if err != nil {
			t.Fatalf("kafkaproxy: %v", err)
		}
		p.seeds = append(p.seeds, l.local)
	}
	t.Cleanup(p.Close)
	return p
}

// Seeds returns the addresses to give the client as its seed brokers.
func (p *Proxy) Seeds() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seeds...)
}

// Cut makes every broker unreachable through the proxy: listeners and
// connections are closed, so dials are refused.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, l := range p.listeners {
		_ = l.ln.Close()
	}
	p.closeConnsLocked()
	p.cond.Broadcast()
}

// Stall stops forwarding in both directions, on open connections and new
// ones alike, without closing anything: requests go unanswered.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
}

// Restore ends a Cut or a Stall. After a Stall, the connections that held
// requests are closed, as a client's request timeout would have them.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled {
		p.stalled = false
		p.closeConnsLocked()
		p.cond.Broadcast()
	}
	if p.cut {
		p.cut = false
		for real, l := range p.listeners {
			ln, err := net.Listen("tcp", l.local)
			if err != nil {
				p.t.Errorf("kafkaproxy: listen again on %s for %s: %v", l.local, real, err)
				continue
			}
			l.ln = ln
			p.serveLocked(l)
		}
	}
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for _, l := range p.listeners {
		_ = l.ln.Close()
	}
	p.closeConnsLocked()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) closeConnsLocked() {
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// listenLocked returns the listener for a real broker address, starting
// one on a free local port the first time.
func (p *Proxy) listenLocked(real string) (*listener, error) {
	if l, ok := p.listeners[real]; ok {
		return l, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for %s: %w", real, err)
	}
	l := &listener{real: real, local: ln.Addr().String(), ln: ln}
	p.listeners[real] = l
	if !p.cut && !p.closed {
		p.serveLocked(l)
	} else {
		_ = ln.Close()
	}
	return l, nil
}

func (p *Proxy) serveLocked(l *listener) {
	ln := l.ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Cut or Close
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.proxy(c, l.real)
			}()
		}
	}()
}

// track registers c, or closes it if the proxy is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	_ = c.Close()
}

// waitFlowing blocks while the proxy is stalled; false once c's side is
// gone.
func (p *Proxy) waitFlowing(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.stalled && !p.closed {
		if _, open := p.conns[c]; !open {
			return false
		}
		p.cond.Wait()
	}
	_, open := p.conns[c]
	return open && !p.closed
}

// proxy serves one client connection to the broker at real.
func (p *Proxy) proxy(client net.Conn, real string) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	if !p.waitFlowing(client) {
		return
	}
	broker, err := net.Dial("tcp", real)
	if err != nil {
		return
	}
	if !p.track(broker) {
		return
	}
	defer p.untrack(broker)

	var mu sync.Mutex
	inflight := map[int32][2]int16{} // correlation id -> key, version
	done := make(chan struct{}, 2)
	go func() { // client -> broker
		defer func() { done <- struct{}{} }()
		for {
			frame, err := readFrame(client)
			if err != nil {
				return
			}
			// A frame too short for a request header is forwarded as it
			// is: a raw SASL token (SaslHandshake v0) has no header.
			if len(frame) >= 8 {
				key, version, corr := requestHeader(frame)
				mu.Lock()
				inflight[corr] = [2]int16{key, version}
				mu.Unlock()
			}
			if !p.waitFlowing(client) || writeFrame(broker, frame) != nil {
				return
			}
		}
	}()
	go func() { // broker -> client
		defer func() { done <- struct{}{} }()
		for {
			frame, err := readFrame(broker)
			if err != nil {
				return
			}
			var (
				kv [2]int16
				ok bool
			)
			if len(frame) >= 4 {
				corr := responseCorrelation(frame)
				mu.Lock()
				kv, ok = inflight[corr]
				delete(inflight, corr)
				mu.Unlock()
			}
			if ok {
				if frame, err = p.rewrite(kv[0], kv[1], frame); err != nil {
					p.t.Errorf("kafkaproxy: rewrite answer to key %d v%d: %v", kv[0], kv[1], err)
					return
				}
			}
			if !p.waitFlowing(client) || writeFrame(client, frame) != nil {
				return
			}
		}
	}()
	<-done
	// One direction ended: close both, which ends the other.
	_ = client.Close()
	_ = broker.Close()
	<-done
}

// rewrite replaces the broker addresses in an answer that carries them by
// the proxy's own listeners.
func (p *Proxy) rewrite(key, version int16, frame []byte) ([]byte, error) {
	switch key {
	case 3, 10, 60: // Metadata, FindCoordinator, DescribeCluster
	default:
		return frame, nil
	}
	resp := kmsg.ResponseForKey(key)
	resp.SetVersion(version)
	body := frame[4:]
	if resp.IsFlexible() { // response header v1: tagged fields
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	local := func(host *string, port *int32) error {
		l, err := p.listenLocked(net.JoinHostPort(*host, strconv.Itoa(int(*port))))
		if err != nil {
			return err
		}
		h, ps, _ := net.SplitHostPort(l.local)
		n, _ := strconv.Atoi(ps)
		*host, *port = h, int32(n) //nolint:gosec // G115: a TCP port fits in an int32
		return nil
	}
	var err error
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for i := range r.Brokers {
			err = errors.Join(err, local(&r.Brokers[i].Host, &r.Brokers[i].Port))
		}
	case *kmsg.FindCoordinatorResponse:
		if r.Host != "" {
			err = errors.Join(err, local(&r.Host, &r.Port))
		}
		for i := range r.Coordinators {
			if r.Coordinators[i].Host != "" {
				err = errors.Join(err, local(&r.Coordinators[i].Host, &r.Coordinators[i].Port))
			}
		}
	case *kmsg.DescribeClusterResponse:
		for i := range r.Brokers {
			err = errors.Join(err, local(&r.Brokers[i].Host, &r.Brokers[i].Port))
		}
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), frame[:4]...) // the correlation id
	if resp.IsFlexible() {
		out = append(out, 0) // no tagged fields
	}
	return resp.AppendTo(out), nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size { //nolint:gosec // G115: 0 < k <= len(b)
			return nil, errors.New("bad tag size")
		}
		b = b[k+int(size):] //nolint:gosec // G115: size is checked against len(b) above
	}
	return b, nil
}

// requestHeader reads a request's API key, version and correlation id.
//
//nolint:gosec // G115: the wire's int16s and int32, reinterpreted as they are
func requestHeader(frame []byte) (key, version int16, corr int32) {
	return int16(binary.BigEndian.Uint16(frame[0:])), int16(binary.BigEndian.Uint16(frame[2:])), int32(binary.BigEndian.Uint32(frame[4:]))
}

// responseCorrelation reads a response's correlation id.
func responseCorrelation(frame []byte) int32 {
	return int32(binary.BigEndian.Uint32(frame[0:])) //nolint:gosec // G115: the wire's int32, reinterpreted as it is
}

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	frame := make([]byte, n)
	_, err := io.ReadFull(r, frame)
	return frame, err
}

func writeFrame(w io.Writer, frame []byte) error {
	buf := make([]byte, 4, 4+len(frame))
	binary.BigEndian.PutUint32(buf, uint32(len(frame))) //nolint:gosec // G115: frames are at most maxFrame
	_, err := w.Write(append(buf, frame...))
	return err
}
