package systest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/assent-dev/assent/test/tb"
)

// RepoRoot is the root of this checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "../.."))
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]error{}
)

// Build compiles the named binaries once per test binary and returns the
// directory holding them. A name is a service (services/<name>) or a tool
// (tools/<name>).
func Build(t tb.TB, names ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "assent-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	for _, name := range names {
		err, done := built[name]
		if !done {
			err = build(name, buildDir)
			built[name] = err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buildDir
}

func build(name, dir string) error {
	src := filepath.Join(RepoRoot(), "services", name)
	if _, err := os.Stat(src); err != nil {
		src = filepath.Join(RepoRoot(), "tools", name)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("systest: build %s: %w\n%s", name, err, out)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// and that no other call in this process returned (UniquePort).
func FreePort(t tb.TB) int {
	t.Helper()
	port, err := UniquePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr is FreePort as host:port.
func FreeAddr(t tb.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// UniqueAddr is UniquePort as host:port.
func UniqueAddr() (string, error) {
	port, err := UniquePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// handedOut are the ports UniquePort returned in this process.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// UniquePort returns a TCP port on 127.0.0.1 that was free a moment ago
// and that it never returned before in this process. The kernel picks a
// probe listener's port at random from the ephemeral range and may pick a
// closed probe's port again, and two processes of one test given the same
// port fight for it: one never binds, and its clients reach the other.
func UniquePort() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("systest: free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		handedOut.Lock()
		fresh := !handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if fresh {
			return port, nil
		}
	}
	return 0, errors.New("systest: free port: 100 probes in a row found ports this process had handed out already")
}

// Proc is one service process that a test starts, kills and restarts.
type Proc struct {
	Name string
	Bin  string
	Args []string // its arguments, such as a subcommand
	Env  []string
	Port int // its HTTP port
	Log  string

	mu  sync.Mutex
	cmd *exec.Cmd
	t   tb.TB
}

// Start starts the process; its output is appended to p.Log.
func (p *Proc) Start() {
	p.t.Helper()
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	_ = f.Close()
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	go func() { _ = cmd.Wait() }()
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM and waits until the process is gone.
func (p *Proc) Stop() { p.signal(syscall.SIGTERM) }

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)); err == nil && strings.Contains(string(st), ") Z ") {
			return // a zombie waiting for Wait: gone for our purposes
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

// URL is the process's base URL.
func (p *Proc) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Port) }

// WaitReady polls /readyz until it answers 200.
func (p *Proc) WaitReady(ctx context.Context) error {
	for {
		resp, err := http.Get(p.URL() + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			logs, _ := os.ReadFile(p.Log)
			return fmt.Errorf("systest: %s not ready: %w\n%s", p.Name, ctx.Err(), tail(string(logs), 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NewProc prepares (but does not start) a service process; it is stopped
// when the test ends.
func NewProc(t tb.TB, bin, name string, env ...string) *Proc {
	t.Helper()
	dir := t.TempDir()
	port := FreePort(t)
	p := &Proc{
		Name: name, Bin: bin, Port: port, Log: filepath.Join(dir, name+".log"), t: t,
		Env: append(append(DeciderKeyEnv(), CommandKeyEnvFor(bin)...), append([]string{
			// The instance names the Kafka transactional id, which is
			// cluster-wide: two tests (or a test and scripts/up) that both
			// start a "decider-1" on one cluster would fence each other.
			// The port makes the name unique on this host.
			fmt.Sprintf("ASSENT_INSTANCE_ID=%s-%d", name, port),
			"ASSENT_DATA_DIR=" + filepath.Join(dir, "data"),
			fmt.Sprintf("ASSENT_HTTP_ADDR=127.0.0.1:%d", port),
		}, env...)...),
	}
	t.Cleanup(p.Stop)
	return p
}
