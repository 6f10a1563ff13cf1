package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/assent-dev/assent/test/systest"
)

// Build compiles the services the suite runs into dir. tags, if set, are
// build tags for the decider (a deliberately broken build).
func Build(ctx context.Context, root, dir, deciderTags string) error {
	for _, s := range []string{"services/api", "services/decider", "services/slack-gateway", "tools/fake-slack"} {
		args := []string{"build", "-o", filepath.Join(dir, filepath.Base(s))}
		if s == "services/decider" && deciderTags != "" {
			args = append(args, "-tags", deciderTags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
		cmd.Dir = filepath.Join(root, s)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("chaos: build %s: %w\n%s", s, err, out)
		}
	}
	return nil
}

// Proc is one service process that the nemesis kills, pauses and restarts.
// Its data directory outlives restarts, as a pod's volume would.
type Proc struct {
	Name string
	Kind string // api, decider, slack-gateway, fake-slack
	Bin  string
	Args []string
	Env  []string
	Port int
	Log  string

	// Supervise restarts the process a second after it exits on its own,
	// as Kubernetes restarts a crashed container; every such exit is
	// recorded in Exits.
	Supervise bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	closed bool
	exits  []Exit
}

// Exit is a process ending that nobody asked for.
type Exit struct {
	Process string    `json:"process"`
	At      time.Time `json:"at"`
	Status  string    `json:"status"`
	LastLog string    `json:"last_log"`
}

// Exits returns the unplanned exits so far.
func (p *Proc) Exits() []Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exits)
}

// Close stops the process for good: no restart after it.
func (p *Proc) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Stop()
}

// waited runs when cmd has exited: if nobody killed or stopped it, the
// exit is recorded and, if supervised, the process restarted.
func (p *Proc) waited(cmd *exec.Cmd, err error) {
	p.mu.Lock()
	planned := p.cmd != cmd
	if !planned {
		p.cmd = nil
		status := "exit 0"
		if err != nil {
			status = err.Error()
		}
		p.exits = append(p.exits, Exit{Process: p.Name, At: time.Now(), Status: status, LastLog: tailFile(p.Log, 1)})
	}
	restart := !planned && p.Supervise && !p.closed
	p.mu.Unlock()
	if restart {
		time.Sleep(time.Second)
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			_ = p.Start()
		}
	}
}

// NewProc prepares a service process with its own port, data directory
// and unique instance id (transactional ids derive from it).
func NewProc(dir, bin, kind, name, instance string, env ...string) (*Proc, error) {
	port, err := systest.UniquePort() // no other process of the run is given it
	if err != nil {
		return nil, err
	}
	return &Proc{
		Name: name, Kind: kind, Bin: bin, Port: port, Log: filepath.Join(dir, name+".log"),
		Env: append(append(append(systest.DeciderKeyEnv(), systest.CommandKeyEnvFor(kind)...),
			"ASSENT_INSTANCE_ID="+instance,
			"ASSENT_DATA_DIR="+filepath.Join(dir, "data", name),
			fmt.Sprintf("ASSENT_HTTP_ADDR=127.0.0.1:%d", port),
		), env...),
	}, nil
}

// Start starts the process, appending its output to p.Log.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil || p.closed {
		return nil
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	defer func() { _ = f.Close() }() // the child holds its own descriptor
	// A marker, so that Owned forgets what an earlier incarnation held.
	_, _ = fmt.Fprintf(f, "{\"msg\":%q,\"time\":%q}\n", startMarker, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.Name, err)
	}
	p.cmd = cmd
	go func() { p.waited(cmd, cmd.Wait()) }()
	return nil
}

// Pid is the running process's id, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() { p.end(syscall.SIGKILL) }

// Stop sends SIGTERM and waits until the process is gone.
func (p *Proc) Stop() { p.end(syscall.SIGTERM) }

func (p *Proc) end(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a paused process cannot act on SIGTERM
		waitGone(cmd, sig, 30*time.Second)
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Proc) Pause() error  { return p.signal(syscall.SIGSTOP) }
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Proc) signal(sig syscall.Signal) error {
	pid := p.Pid()
	if pid == 0 {
		return fmt.Errorf("chaos: %s is not running", p.Name)
	}
	return syscall.Kill(pid, sig)
}

// URL is the process's base URL.
func (p *Proc) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Port) }

// WaitReady polls /readyz until it answers 200.
func (p *Proc) WaitReady(ctx context.Context) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(p.URL() + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: %s not ready: %w\n%s", p.Name, ctx.Err(), tailFile(p.Log, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const startMarker = "chaos: process started"

// Owned reads a decider's JSON log for the partitions it was assigned last
// (the "partitions assigned" and "partitions revoked" lines).
func (p *Proc) Owned() []int32 {
	f, err := os.Open(p.Log)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read-only
	owned := map[int32]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg        string  `json:"msg"`
			Partitions []int32 `json:"partitions"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case startMarker:
			clear(owned)
		case "partitions assigned":
			for _, q := range line.Partitions {
				owned[q] = true
			}
		case "partitions revoked", "partitions lost":
			for _, q := range line.Partitions {
				delete(owned, q)
			}
		}
	}
	var out []int32
	for q := range owned {
		out = append(out, q)
	}
	slices.Sort(out)
	return out
}
