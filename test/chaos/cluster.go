package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
)

// Cluster is the suite's own three-node Kafka cluster (KRaft, combined
// broker+controller nodes, the settings of infra/kafka/node.properties.tmpl),
// with each node in its own network namespace so that one node can be cut
// off from the others.
//
// # The network
//
// A bridge in the root namespace (acb<id>, 10.231.N.1/24) and, per node, a
// namespace (acn<id>-<n>) joined to it by a veth pair, the node on
// 10.231.N.1<n>. Services and clients stay in the root namespace and reach
// every node through the bridge. Partition(n) adds blackhole routes: in
// node n's namespace to the other nodes' addresses, and in theirs to n's.
// Node n then cannot reach its peers (replication, the controller quorum)
// and they cannot reach it, while clients still reach all three: the
// asymmetric case in which a leader that lost its ISR keeps being asked.
// Heal(n) deletes the routes. Only iproute2 and the kernel's netns, veth
// and bridge support are needed: no nftables, no iptables.
type Cluster struct {
	Dir   string
	id    string
	net   string // 10.231.N
	libs  string
	java  string
	tmpl  string
	log4j string
	nodes [3]*node
	logf  func(format string, args ...any)
	admin *eventlog.SCRAM // the super user, as in scripts/kafka
}

type node struct {
	n   int
	ns  string
	ip  string
	cmd *exec.Cmd
}

const (
	brokerPort     = 9092
	controllerPort = 9093
	tlsPort        = 9292 // the mutual-TLS listener (for kcat); unused by the run
)

// KafkaLibs finds the Kafka jars that scripts/kafka caches.
func KafkaLibs(root string) (string, error) {
	pom, err := os.ReadFile(filepath.Join(root, "infra/kafka/pom.xml"))
	if err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	m := regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`).FindSubmatch(pom)
	if m == nil {
		return "", errors.New("chaos: no <kafka.version> in infra/kafka/pom.xml")
	}
	cache := os.Getenv("ASSENT_CACHE_DIR")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache/assent")
	}
	libs := filepath.Join(cache, "kafka", string(m[1]), "libs")
	if _, err := os.Stat(filepath.Join(libs, ".complete")); err != nil {
		return "", fmt.Errorf("chaos: the Kafka %s jars are not in %s: run scripts/kafka up once to fetch them", m[1], libs)
	}
	return libs, nil
}

// StartCluster creates the network and starts three nodes under dir. Call
// Close, also on failure, to remove what it made.
func StartCluster(ctx context.Context, root, dir string, logf func(string, ...any)) (*Cluster, error) {
	libs, err := KafkaLibs(root)
	if err != nil {
		return nil, err
	}
	java := "java"
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		java = filepath.Join(jh, "bin/java")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("chaos: iproute2 (ip) is required for the broker network; apt-get install iproute2")
	}
	c := &Cluster{Dir: dir, libs: libs, java: java, logf: logf,
		tmpl: filepath.Join(root, "infra/kafka/node.properties.tmpl"), log4j: filepath.Join(root, "infra/kafka/log4j2.xml")}
	c.id = fmt.Sprintf("%05d", os.Getpid()%100000)
	if err := c.setupNetwork(ctx); err != nil {
		c.Close()
		return nil, err
	}
	clusterID := make([]byte, 16)
	_, _ = rand.Read(clusterID)
	cid := strings.ReplaceAll(base64.RawURLEncoding.EncodeToString(clusterID), "-", "A")
	voters := make([]string, 3)
	for i, nd := range c.nodes {
		voters[i] = fmt.Sprintf("%d@%s:%d", i+1, nd.ip, controllerPort)
	}
	tmpl, err := os.ReadFile(c.tmpl)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("chaos: %w", err)
	}
	// Every connection authenticates, as in scripts/kafka: the admin's
	// SCRAM credential is bootstrapped at format time.
	password, err := NewPassword(filepath.Join(dir, "credentials", "admin.password"))
	if err != nil {
		c.Close()
		return nil, err
	}
	c.admin = &eventlog.SCRAM{User: "admin", PasswordFile: filepath.Join(dir, "credentials", "admin.password")}
	pki := logadmin.LocalPKI{Dir: filepath.Join(dir, "pki")}
	ips := make([]string, 0, len(c.nodes))
	for _, nd := range c.nodes {
		ips = append(ips, nd.ip)
	}
	if err := pki.Ensure(ips, []string{"admin"}); err != nil {
		c.Close()
		return nil, err
	}
	errs := make(chan error, 3)
	for _, nd := range c.nodes {
		ndir := c.nodeDir(nd.n)
		if err := os.MkdirAll(filepath.Join(ndir, "logs"), 0o750); err != nil {
			c.Close()
			return nil, fmt.Errorf("chaos: %w", err)
		}
		props := strings.NewReplacer(
			"@NODE_ID@", fmt.Sprint(nd.n), "@VOTERS@", strings.Join(voters, ","),
			"@BROKER_PORT@", fmt.Sprint(brokerPort), "@CONTROLLER_PORT@", fmt.Sprint(controllerPort),
			"@DATA_DIR@", filepath.Join(ndir, "data"), "@REPLICATION_FACTOR@", "3", "@MIN_ISR@", "2",
			"@ADMIN_PASSWORD@", password, "@TLS_PORT@", fmt.Sprint(tlsPort), "@PKI_DIR@", pki.Dir,
			"127.0.0.1", nd.ip,
		).Replace(string(tmpl))
		if err := os.WriteFile(filepath.Join(ndir, "server.properties"), []byte(props), 0o600); err != nil {
			c.Close()
			return nil, fmt.Errorf("chaos: %w", err)
		}
		go func() {
			out, err := exec.CommandContext(ctx, c.java, "-Xmx256m", "-XX:TieredStopAtLevel=1",
				"-Dlog4j2.configurationFile="+c.log4j, "-Dkafka.logs.dir="+filepath.Join(ndir, "logs"),
				"-cp", c.libs+"/*", "kafka.tools.StorageTool", "format", "--ignore-formatted",
				"-t", cid, "-c", filepath.Join(ndir, "server.properties"),
				"--add-scram", "SCRAM-SHA-512=[name=admin,password="+password+"]").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("chaos: format node %d: %w\n%s", nd.n, err, out)
			}
			errs <- err
		}()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, nd := range c.nodes {
		if err := c.Start(nd.n); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Admin is the cluster's super user.
func (c *Cluster) Admin() *eventlog.SCRAM { return c.admin }

// NewPassword writes a random password to path (mode 0600, its directory
// 0700) and returns it: 32 random bytes in base64url, which needs no
// quoting in a JAAS line.
func NewPassword(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	p := base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(p), 0o600); err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	return p, nil
}

func (c *Cluster) nodeDir(n int) string { return filepath.Join(c.Dir, fmt.Sprintf("node-%d", n)) }

func (c *Cluster) bridge() string { return "acb" + c.id }

func (c *Cluster) ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// setupNetwork picks a free 10.231.N.0/24 and builds the bridge and the
// namespaces.
func (c *Cluster) setupNetwork(ctx context.Context) error {
	used := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				ip := ipn.IP.To4()
				used[fmt.Sprintf("%d.%d.%d", ip[0], ip[1], ip[2])] = true
			}
		}
	}
	pid := os.Getpid()
	for i := range 200 {
		cand := fmt.Sprintf("10.231.%d", 20+(pid+i)%200)
		if !used[cand] {
			c.net = cand
			break
		}
	}
	if c.net == "" {
		return errors.New("chaos: no free 10.231.N.0/24 for the broker network")
	}
	for i := range c.nodes {
		c.nodes[i] = &node{n: i + 1, ns: fmt.Sprintf("acn%s-%d", c.id, i+1), ip: fmt.Sprintf("%s.%d", c.net, 11+i)}
	}
	steps := [][]string{
		{"link", "add", c.bridge(), "type", "bridge"},
		{"addr", "add", c.net + ".1/24", "dev", c.bridge()},
		{"link", "set", c.bridge(), "up"},
	}
	for _, s := range steps {
		if err := c.ipCmd(ctx, s...); err != nil {
			return fmt.Errorf("%w (network namespaces, veth and bridges need root and CAP_NET_ADMIN)", err)
		}
	}
	for _, nd := range c.nodes {
		host, peer := fmt.Sprintf("acv%s%d", c.id, nd.n), fmt.Sprintf("acp%s%d", c.id, nd.n)
		for _, s := range [][]string{
			{"netns", "add", nd.ns},
			{"link", "add", host, "type", "veth", "peer", "name", peer},
			{"link", "set", peer, "netns", nd.ns},
			{"link", "set", host, "master", c.bridge(), "up"},
			{"-n", nd.ns, "addr", "add", nd.ip + "/24", "dev", peer},
			{"-n", nd.ns, "link", "set", peer, "up"},
			{"-n", nd.ns, "link", "set", "lo", "up"},
		} {
			if err := c.ipCmd(ctx, s...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Brokers are the nodes' addresses, as clients in the root namespace
// reach them.
func (c *Cluster) Brokers() []string {
	out := make([]string, 3)
	for i, nd := range c.nodes {
		out[i] = fmt.Sprintf("%s:%d", nd.ip, brokerPort)
	}
	return out
}

// Start starts node n (1-3) in its namespace.
func (c *Cluster) Start(n int) error {
	nd := c.nodes[n-1]
	if nd.cmd != nil {
		return nil
	}
	ndir := c.nodeDir(n)
	f, err := os.OpenFile(filepath.Join(ndir, "logs/stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	defer func() { _ = f.Close() }() // the child holds its own descriptor
	cmd := exec.Command("ip", "netns", "exec", nd.ns, c.java, "-Xms384m", "-Xmx384m",
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+c.log4j, "-Dkafka.logs.dir="+filepath.Join(ndir, "logs"),
		"-cp", c.libs+"/*", "kafka.Kafka", filepath.Join(ndir, "server.properties"))
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start kafka node %d: %w", n, err)
	}
	nd.cmd = cmd
	go func() { _ = cmd.Wait() }()
	c.logf("kafka node %d started (pid %d, %s in %s)", n, cmd.Process.Pid, nd.ip, nd.ns)
	return nil
}

// Kill sends SIGKILL to node n and waits until it is gone.
func (c *Cluster) Kill(n int) { c.signal(n, syscall.SIGKILL) }

func (c *Cluster) signal(n int, sig syscall.Signal) {
	nd := c.nodes[n-1]
	if nd.cmd == nil {
		return
	}
	waitGone(nd.cmd, sig, 30*time.Second)
	nd.cmd = nil
}

// Partition cuts node n off from the other nodes (clients still reach it).
func (c *Cluster) Partition(ctx context.Context, n int) error {
	return c.routes(ctx, n, "add")
}

// Heal undoes Partition.
func (c *Cluster) Heal(ctx context.Context, n int) error {
	return c.routes(ctx, n, "del")
}

func (c *Cluster) routes(ctx context.Context, n int, verb string) error {
	cut := c.nodes[n-1]
	var errs []error
	for _, other := range c.nodes {
		if other == cut {
			continue
		}
		errs = append(errs,
			c.ipCmd(ctx, "-n", cut.ns, "route", verb, "blackhole", other.ip+"/32"),
			c.ipCmd(ctx, "-n", other.ns, "route", verb, "blackhole", cut.ip+"/32"))
	}
	return errors.Join(errs...)
}

// Close stops every node and removes the namespaces and the bridge.
func (c *Cluster) Close() {
	for _, nd := range c.nodes {
		if nd != nil && nd.cmd != nil {
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, nd := range c.nodes {
		if nd != nil && nd.cmd != nil {
			waitGone(nd.cmd, syscall.SIGTERM, 20*time.Second)
			nd.cmd = nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range c.nodes {
		if nd != nil {
			_ = c.ipCmd(ctx, "link", "del", fmt.Sprintf("acv%s%d", c.id, nd.n))
			_ = c.ipCmd(ctx, "netns", "del", nd.ns)
		}
	}
	if c.net != "" {
		_ = c.ipCmd(ctx, "link", "del", c.bridge())
	}
}

// waitGone signals a process and waits, bounded, until it has exited; it
// escalates to SIGKILL at the deadline.
func waitGone(cmd *exec.Cmd, sig syscall.Signal, timeout time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	deadline := time.Now().Add(timeout)
	for i := 0; i < 100000; i++ {
		if !alive(cmd.Process.Pid) {
			return
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			deadline = time.Now().Add(10 * time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie awaiting Wait does not count).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(st), ") Z ")
}
