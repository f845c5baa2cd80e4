// Package localweaviate runs a real Weaviate server on loopback: for tests,
// and for the experiment when no Weaviate URL is given.
package localweaviate

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xling-ir/xling/internal/buildbin"
)

// BinaryEnv names the variable that overrides where the server binary is.
const BinaryEnv = "XLING_WEAVIATE_BIN"

// Options configures a local server.
type Options struct {
	Binary       string            // weaviate-server; "" means FindBinary
	DataDir      string            // "" means a temporary directory removed by Stop
	Port         int               // REST port; 0 picks a free one
	Modules      []string          // ENABLE_MODULES, e.g. text2vec-transformers
	Env          map[string]string // extra environment, e.g. TRANSFORMERS_INFERENCE_API; wins over the defaults
	StartTimeout time.Duration     // 0 means two minutes
	Logger       *slog.Logger
}

// Server is a running Weaviate process.
type Server struct {
	Host     string // host:port of the REST API
	GRPCHost string // host:port of the gRPC API
	DataDir  string

	bin      string
	args     []string
	env      []string
	timeout  time.Duration
	cmd      *exec.Cmd
	log      *tailBuffer
	exited   chan struct{}
	waitErr  error
	ownsData bool
	stopOnce sync.Once
}

// URL is the REST API's base URL.
func (s *Server) URL() string { return "http://" + s.Host }

// ErrNoBinary reports that the weaviate-server binary was not found.
var ErrNoBinary = buildbin.ErrNotFound

// FindBinary locates weaviate-server: $XLING_WEAVIATE_BIN, then
// .build/bin/weaviate-server in this directory or any parent (where
// `make weaviate` puts it), then $PATH.
func FindBinary() (string, error) { return buildbin.Find("weaviate-server", BinaryEnv, "weaviate") }

// resolve returns the logger and the server binary opts name, or their
// defaults.
func (opts Options) resolve() (*slog.Logger, string, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Binary != "" {
		return log, opts.Binary, nil
	}
	bin, err := FindBinary()
	return log, bin, err
}

// Start launches a single-node Weaviate on loopback and waits until it is
// ready. The caller must Stop it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	log, bin, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if opts.Port != 0 {
		if err := portFree(opts.Port); err != nil {
			return nil, err
		}
	}
	// Weaviate binds the data, gRPC, metrics and profiling ports on every
	// interface, so all are probed there and held together until chosen.
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	httpPort := opts.Port
	if httpPort == 0 {
		httpPort = ports[6]
	}
	np := nodePorts{http: httpPort, grpc: ports[0], gossip: ports[1], data: ports[2], raft: ports[3], raftRPC: ports[4], pprof: ports[5]}
	s, err := newNode(opts, bin, np, map[string]string{"CLUSTER_HOSTNAME": "node1", "RAFT_BOOTSTRAP_EXPECT": "1"})
	if err != nil {
		return nil, err
	}
	if err := s.launch(ctx, log); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// nodePorts are the ports one node listens on.
type nodePorts struct{ http, grpc, gossip, data, raft, raftRPC, pprof int }

// newNode prepares a server on ports with its data directory; node holds
// the variables that place it in a cluster.
func newNode(opts Options, bin string, p nodePorts, node map[string]string) (*Server, error) {
	s := &Server{
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.http)),
		GRPCHost: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.grpc)),
		DataDir:  opts.DataDir,
		log:      &tailBuffer{max: 64 << 10},
		exited:   make(chan struct{}),
	}
	if s.DataDir == "" {
		var err error
		if s.DataDir, err = os.MkdirTemp("", "xling-weaviate-"); err != nil {
			return nil, fmt.Errorf("weaviate data directory: %w", err)
		}
		s.ownsData = true
	}
	env := map[string]string{
		"AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
		"PERSISTENCE_DATA_PATH":                   s.DataDir,
		"DISABLE_TELEMETRY":                       "true",
		"CLUSTER_BIND_ADDR":                       "127.0.0.1",
		"CLUSTER_ADVERTISE_ADDR":                  "127.0.0.1",
		"RAFT_TIMEOUTS_MULTIPLIER":                "1",
		"API_BASED_MODULES_DISABLED":              "true",
		"DEFAULT_VECTORIZER_MODULE":               "none",
		"ENABLE_MODULES":                          strings.Join(opts.Modules, ","),
		"GRPC_PORT":                               strconv.Itoa(p.grpc),
		"CLUSTER_GOSSIP_BIND_PORT":                strconv.Itoa(p.gossip),
		"CLUSTER_DATA_BIND_PORT":                  strconv.Itoa(p.data),
		"RAFT_PORT":                               strconv.Itoa(p.raft),
		"RAFT_INTERNAL_RPC_PORT":                  strconv.Itoa(p.raftRPC),
		"GO_PROFILING_PORT":                       strconv.Itoa(p.pprof),
		"PROMETHEUS_MONITORING_PORT":              "0",
		"LOG_LEVEL":                               "warning",
		// BM25 through BlockMax WAND gave different (and far worse) results
		// for the same query on freshly imported, filtered data in about one
		// run of three here (cf. weaviate#8704, #7640); the classic WAND
		// path is exact.
		"USE_BLOCKMAX_WAND": "false",
	}
	for k, v := range node {
		env[k] = v
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	s.bin = bin
	s.args = []string{"--scheme", "http", "--host", "127.0.0.1", "--port", strconv.Itoa(p.http)}
	s.env = os.Environ()
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	s.timeout = opts.StartTimeout
	if s.timeout == 0 {
		s.timeout = 2 * time.Minute
	}
	return s, nil
}

// launch starts the process and waits until it is ready.
func (s *Server) launch(ctx context.Context, log *slog.Logger) error {
	if err := s.spawn(log); err != nil {
		return err
	}
	if err := s.waitReady(ctx, s.timeout); err != nil {
		return err
	}
	log.Info("weaviate ready", "url", s.URL())
	return nil
}

// spawn starts the process without waiting for it.
func (s *Server) spawn(log *slog.Logger) error {
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// Its own process group, so that a Ctrl-C meant for the caller does not
	// kill the server before Stop can shut it down cleanly. Pdeathsig: a
	// caller killed with SIGKILL takes its server with it (Linux), instead
	// of leaving it running on the data directory a rerun needs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stopStale(s.DataDir, s.bin, log)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	// Where Pdeathsig cannot help (another OS, or the starting thread gone),
	// the pid file lets the next Start on this data directory stop it.
	_ = os.WriteFile(filepath.Join(s.DataDir, pidFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	exited := make(chan struct{})
	s.exited = exited
	go func() { s.waitErr = cmd.Wait(); close(exited) }()
	log.Info("weaviate starting", "url", s.URL(), "grpc", s.GRPCHost, "data", s.DataDir)
	return nil
}

// pidFile in the data directory names the server running on it.
const pidFile = "xling-weaviate.pid"

// stopStale stops a server left running on dataDir by a caller that was
// killed, if the pid file names a live process of the same binary.
func stopStale(dataDir, bin string, log *slog.Logger) {
	b, err := os.ReadFile(filepath.Join(dataDir, pidFile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(exe) != filepath.Base(bin) {
		return
	}
	log.Warn("stopping a weaviate left running on this data directory", "pid", pid, "data", dataDir)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 150 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Restart stops the server as an orchestrator would (SIGTERM) and starts it
// again on the same ports and data: a rolling restart, as clients see it.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.terminate(); err != nil {
		return err
	}
	return s.launch(ctx, slog.New(slog.DiscardHandler))
}

// Kill stops the server as a crash would (SIGKILL, no shutdown); Restart
// brings it back on the same ports and data.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// terminate sends SIGTERM and waits, killing the process group after 15 s.
func (s *Server) terminate() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		return fmt.Errorf("weaviate did not stop within 15s of SIGTERM; killed")
	}
}

func (s *Server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/v1/.well-known/ready", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("weaviate exited during startup (%v); its last output:\n%s", s.waitErr, s.log.String())
		case <-ctx.Done():
			return fmt.Errorf("weaviate at %s not ready after %s: %w; its last output:\n%s", s.URL(), timeout, ctx.Err(), s.log.String())
		case <-tick.C:
		}
	}
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 15 s) and removes
// its data directory if Start created it.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() {
		err = s.terminate()
		s.cleanup()
	})
	return err
}

// Output returns the end of the server's log, for diagnosing a failure.
func (s *Server) Output() string { return s.log.String() }

func (s *Server) cleanup() {
	if s.ownsData {
		_ = os.RemoveAll(s.DataDir)
	}
}

func portFree(port int) error {
	for _, addr := range []string{"127.0.0.1", ""} {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("weaviate port %d is already in use (%v): stop what holds it or choose another port (0 picks a free one)", port, err)
		}
		l.Close()
	}
	return nil
}

// freePorts returns n distinct ports that were free on every interface.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
