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

// Cluster is the suite's own Kafka cluster in the shape of production
// (infra/k8s/10-kafka.yaml): three brokers and three dedicated KRaft
// controllers, the settings of infra/kafka/node.properties.tmpl, each
// process in its own network namespace so that one can be cut off from the
// others. Dedicated controllers are Kafka's advice for critical
// deployments: a broker lost is then never the controller too, so it is
// fenced one broker session after its last heartbeat, whatever it hosted
// (docs/architecture.md, "Failover").
//
// # The network
//
// A bridge in the root namespace (acb<id>, 10.231.N.1/24) and, per process,
// a namespace joined to it by a veth pair: broker n (1-3) in acn<id>-<n> on
// 10.231.N.1<n>, controller n in acn<id>-c<n> on 10.231.N.2<n>. Services
// and clients stay in the root namespace and reach every broker through the
// bridge. Partition(n) adds blackhole routes: in broker n's namespace to
// every other broker's and controller's address, and in theirs to n's.
// Broker n then cannot reach its peers (replication, the controller quorum)
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
	nodes [6]*node // brokers 1-3, then controllers 1-3
	logf  func(format string, args ...any)
	admin *eventlog.SCRAM // the super user, as in scripts/kafka
}

type node struct {
	id         int    // the Kafka node.id: n for broker n, 100+n for controller n
	controller bool   // a dedicated controller, else a broker
	name       string // "broker n" or "controller n", for logs
	suffix     string // of its namespace and veth names: "n" or "cn"
	ns         string
	ip         string
	cmd        *exec.Cmd
}

// broker is broker n (1-3); controller is controller n (1-3).
func (c *Cluster) broker(n int) *node     { return c.nodes[n-1] }
func (c *Cluster) controller(n int) *node { return c.nodes[3+n-1] }

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
	var voters []string
	for _, nd := range c.nodes {
		if nd.controller {
			voters = append(voters, fmt.Sprintf("%d@%s:%d", nd.id, nd.ip, controllerPort))
		}
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
	errs := make(chan error, len(c.nodes))
	for _, nd := range c.nodes {
		ndir := c.nodeDir(nd)
		if err := os.MkdirAll(filepath.Join(ndir, "logs"), 0o750); err != nil {
			c.Close()
			return nil, fmt.Errorf("chaos: %w", err)
		}
		props := strings.NewReplacer(
			"@NODE_ID@", fmt.Sprint(nd.id), "@VOTERS@", strings.Join(voters, ","),
			"@BROKER_PORT@", fmt.Sprint(brokerPort), "@CONTROLLER_PORT@", fmt.Sprint(controllerPort),
			"@DATA_DIR@", filepath.Join(ndir, "data"), "@REPLICATION_FACTOR@", "3", "@MIN_ISR@", "2",
			"@ADMIN_PASSWORD@", password, "@TLS_PORT@", fmt.Sprint(tlsPort), "@PKI_DIR@", pki.Dir,
			"127.0.0.1", nd.ip,
		).Replace(string(tmpl))
		props = nd.roleProperties(props)
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
				err = fmt.Errorf("chaos: format %s: %w\n%s", nd.name, err, out)
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
		if err := c.start(nd); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// roleProperties makes the template's combined node (process.roles
// broker,controller) the dedicated process nd is: a broker without the
// controller listener, or a controller with only it. Kafka refuses
// either role with the other's listeners.
func (nd *node) roleProperties(props string) string {
	set := map[string]string{
		"process.roles": "broker",
		"listeners":     fmt.Sprintf("SASL_PLAINTEXT://%s:%d,TLS://%s:%d", nd.ip, brokerPort, nd.ip, tlsPort),
	}
	if nd.controller {
		set = map[string]string{
			"process.roles":              "controller",
			"listeners":                  fmt.Sprintf("CONTROLLER://%s:%d", nd.ip, controllerPort),
			"advertised.listeners":       "",
			"inter.broker.listener.name": "",
		}
	}
	var out []string
	for _, line := range strings.Split(props, "\n") {
		k, _, ok := strings.Cut(line, "=")
		if v, replaced := set[strings.TrimSpace(k)]; ok && !strings.HasPrefix(line, "#") && replaced {
			if v == "" {
				continue
			}
			line = k + "=" + v
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
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

func (c *Cluster) nodeDir(nd *node) string {
	if nd.controller {
		return filepath.Join(c.Dir, "controller-"+nd.suffix[1:])
	}
	return filepath.Join(c.Dir, "node-"+nd.suffix)
}

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
	for i := range 3 {
		n := i + 1
		c.nodes[i] = &node{id: n, name: fmt.Sprintf("broker %d", n), suffix: fmt.Sprint(n),
			ns: fmt.Sprintf("acn%s-%d", c.id, n), ip: fmt.Sprintf("%s.%d", c.net, 10+n)}
		c.nodes[3+i] = &node{id: 100 + n, controller: true, name: fmt.Sprintf("controller %d", n), suffix: fmt.Sprintf("c%d", n),
			ns: fmt.Sprintf("acn%s-c%d", c.id, n), ip: fmt.Sprintf("%s.%d", c.net, 20+n)}
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
		host, peer := "acv"+c.id+nd.suffix, "acp"+c.id+nd.suffix
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

// Brokers are the brokers' addresses, as clients in the root namespace
// reach them.
func (c *Cluster) Brokers() []string {
	out := make([]string, 3)
	for n := 1; n <= 3; n++ {
		out[n-1] = fmt.Sprintf("%s:%d", c.broker(n).ip, brokerPort)
	}
	return out
}

// Start starts broker n (1-3) in its namespace.
func (c *Cluster) Start(n int) error { return c.start(c.broker(n)) }

// StartController starts controller n (1-3) in its namespace.
func (c *Cluster) StartController(n int) error { return c.start(c.controller(n)) }

func (c *Cluster) start(nd *node) error {
	if nd.cmd != nil {
		return nil
	}
	ndir := c.nodeDir(nd)
	// A controller keeps only the cluster's metadata.
	heap := []string{"-Xms384m", "-Xmx384m"}
	if nd.controller {
		heap = []string{"-Xms192m", "-Xmx192m"}
	}
	f, err := os.OpenFile(filepath.Join(ndir, "logs/stdout.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	defer func() { _ = f.Close() }() // the child holds its own descriptor
	args := append([]string{"netns", "exec", nd.ns, c.java}, heap...)
	cmd := exec.Command("ip", append(args, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile="+c.log4j, "-Dkafka.logs.dir="+filepath.Join(ndir, "logs"),
		"-cp", c.libs+"/*", "kafka.Kafka", filepath.Join(ndir, "server.properties"))...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start kafka %s: %w", nd.name, err)
	}
	nd.cmd = cmd
	go func() { _ = cmd.Wait() }()
	c.logf("kafka %s started (pid %d, %s in %s)", nd.name, cmd.Process.Pid, nd.ip, nd.ns)
	return nil
}

// Kill sends SIGKILL to broker n and waits until it is gone.
func (c *Cluster) Kill(n int) { c.kill(c.broker(n)) }

// KillController sends SIGKILL to controller n and waits until it is gone.
func (c *Cluster) KillController(n int) { c.kill(c.controller(n)) }

func (c *Cluster) kill(nd *node) {
	if nd.cmd == nil {
		return
	}
	waitGone(nd.cmd, syscall.SIGKILL, 30*time.Second)
	nd.cmd = nil
}

// ActiveController is the controller (1-3) that leads the KRaft quorum, as
// a DescribeQuorum request, which the brokers forward to the controllers,
// answers.
func (c *Cluster) ActiveController(ctx context.Context) (int, error) {
	cl, err := eventlog.NewClient(eventlog.Config{Brokers: c.Brokers(), SCRAM: c.admin, ClientID: "chaos-quorum"})
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	part, err := logadmin.DescribeQuorum(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("chaos: %w", err)
	}
	for n := 1; n <= 3; n++ {
		if int32(c.controller(n).id) == part.LeaderID { //nolint:gosec // G115: node ids are 101 to 103
			return n, nil
		}
	}
	return 0, fmt.Errorf("chaos: the quorum's leader is node %d, not one of the controllers", part.LeaderID)
}

// Partition cuts broker n off from the other brokers and the controllers
// (clients still reach it).
func (c *Cluster) Partition(ctx context.Context, n int) error {
	return c.routes(ctx, n, "add")
}

// Heal undoes Partition.
func (c *Cluster) Heal(ctx context.Context, n int) error {
	return c.routes(ctx, n, "del")
}

func (c *Cluster) routes(ctx context.Context, n int, verb string) error {
	cut := c.broker(n)
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

// Close stops every process, the brokers first (a broker's controlled
// shutdown needs the controllers), and removes the namespaces and the
// bridge.
func (c *Cluster) Close() {
	for _, controllers := range []bool{false, true} {
		for _, nd := range c.nodes {
			if nd != nil && nd.cmd != nil && nd.controller == controllers {
				_ = nd.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, nd := range c.nodes {
			if nd != nil && nd.cmd != nil && nd.controller == controllers {
				waitGone(nd.cmd, syscall.SIGTERM, 20*time.Second)
				nd.cmd = nil
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range c.nodes {
		if nd != nil {
			_ = c.ipCmd(ctx, "link", "del", "acv"+c.id+nd.suffix)
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
