// Package redistest starts real redis-server processes for tests.
//
// Storage tests in Arbiter talk to a real Redis, never a mock: each test
// binary starts its own redis-server on a free loopback port, with nothing
// persisted to disk, and stops it when the tests end. When redis-server is
// not installed the tests are skipped on a developer machine and fail in CI
// (the CI environment variable is set), so that CI never passes by testing
// nothing.
//
// A suite runs on several backends (MainBackends, Backend): a single
// redis-server and a Redis Cluster of redis-server processes created with
// redis-cli (StartCluster), whose masters a test can kill to watch a
// failover (Cluster.KillMasterFor, Cluster.WaitForNewMaster). Waiting is
// readiness polling with a bounded deadline, never a sleep.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a redis-server child process.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// Binary returns the path of redis-server, or "" when it is not installed.
func Binary() string {
	if p := os.Getenv("REDIS_SERVER_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

// Require skips the test (or fails it, in CI) when redis-server is missing.
func Require(tb testing.TB) string {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server is not installed; CI must install it (apt-get install redis-server)")
		}
		tb.Skip("redis-server is not installed; skipping storage test")
	}
	return bin
}

// Start starts a redis-server on a free loopback port with the extra
// configuration lines given (e.g. "cluster-enabled yes"). The caller must
// Stop it. Start returns once the server answers PING.
func Start(extra ...string) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, fmt.Errorf("redistest: redis-server not installed")
	}
	dir, err := os.MkdirTemp("", "arbiter-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s, err := startOn(bin, dir, port, extra)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("redistest: start redis-server: %w", lastErr)
}

func startOn(bin, dir string, port int, extra []string) (*Server, error) {
	conf := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"save \"\"",
		"appendonly no",
		"dir " + dir,
		"logfile " + filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)),
	}
	conf = append(conf, extra...)
	cmd := exec.Command(bin, "-")
	cmd.Stdin = strings.NewReader(strings.Join(conf, "\n") + "\n")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir}
	// Wait until it answers, or until the process dies (port taken).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("redis-server exited on port %d: %v: %s", port, err, s.logTail())
		default:
		}
		if ping(s.Addr) == nil {
			go func() { <-exited }()
			return s, nil
		}
		time.Sleep(20 * time.Millisecond) // readiness poll, not test synchronisation
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("redis-server on port %d did not answer PING", port)
}

func (s *Server) logTail() string {
	matches, _ := filepath.Glob(filepath.Join(s.dir, "redis-*.log"))
	var b strings.Builder
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 5 {
			lines = lines[len(lines)-5:]
		}
		b.WriteString(strings.Join(lines, " / "))
	}
	return b.String()
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server that requires authentication answers NOAUTH: it is up.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	os.RemoveAll(s.dir)
}

// Kill stops the server process without removing its files, to simulate an
// outage in a test. The server cannot be restarted.
func (s *Server) Kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
}

// Freeze stops the server process (SIGSTOP) without closing its sockets:
// to its clients it hangs, as a Redis stalled by the host does. Thaw
// resumes it.
func (s *Server) Freeze() error { return s.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (s *Server) Thaw() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// fuzzing reports whether the test binary runs a fuzz target (go test
// -fuzz): as the coordinator, or as one of its workers. Then no Redis is
// started. The fuzz targets need none, and a worker's redis-server would
// inherit the pipes the worker talks to its coordinator on: a worker
// stopped without its TestMain's cleanup leaves them open, and the
// coordinator waits for them for ever.
func fuzzing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") || strings.HasPrefix(a, "-test.fuzz=") && a != "-test.fuzz=" {
			return true
		}
	}
	return false
}

// Main is for TestMain: it starts one redis-server for the package's tests,
// runs them and stops the server. addr is set to the server's address, or
// left empty when redis-server is missing outside CI (tests then call
// Require and skip).
func Main(m *testing.M, addr *string) int {
	if fuzzing() {
		return m.Run()
	}
	if Binary() == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "redis-server is not installed; CI must install it")
			return 1
		}
		return m.Run()
	}
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Stop()
	*addr = s.Addr
	return m.Run()
}

// Backend is a Redis that a storage suite runs against: "one suite,
// several backends", so that the store is proven on a single Redis and on a
// Redis Cluster alike.
type Backend struct {
	Name    string   // "redis", "cluster" or "miniredis": the t.Run name
	Addrs   []string // the server, or the cluster's nodes (seeds)
	Cluster bool     // Addrs are Redis Cluster nodes
	// Embedded: a fresh miniredis per test, the embedded store of
	// arbiter demo (Addrs is empty).
	Embedded bool
}

// Miniredis is the embedded store as a backend: storage code must behave
// the same on it as on a real Redis, since arbiter demo serves from it.
var Miniredis = Backend{Name: "miniredis", Embedded: true}

// Client returns a client of the backend and a key prefix unique to the
// test, closed when the test ends. It skips the test (fails it in CI) when
// redis-server, or for a cluster redis-cli, is missing.
func (b Backend) Client(tb testing.TB) (redis.UniversalClient, string) {
	tb.Helper()
	if b.Embedded {
		m := miniredis.RunT(tb)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		tb.Cleanup(func() { rdb.Close() })
		return rdb, "arbiter"
	}
	if !b.Cluster {
		if len(b.Addrs) == 0 {
			Require(tb)
			tb.Fatal("redistest: no server address (TestMain must call redistest.MainBackends)")
		}
		return Client(tb, b.Addrs[0])
	}
	RequireCluster(tb)
	if len(b.Addrs) == 0 {
		tb.Fatal("redistest: no cluster (TestMain must call redistest.MainBackends)")
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: b.Addrs})
	tb.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redistest: ping cluster: %v", err)
	}
	return rdb, newPrefix(tb)
}

// MainBackends is for TestMain: it starts a single redis-server and a Redis
// Cluster of 3 masters with a replica each, sets *backends to the two, runs
// the tests and stops the servers. Without redis-server (or redis-cli, for
// the cluster) outside CI the backends are still set, with no address, and
// their Client skips the test; in CI that fails.
func MainBackends(m *testing.M, backends *[]Backend) int {
	single := Backend{Name: "redis"}
	cluster := Backend{Name: "cluster", Cluster: true}
	if fuzzing() {
		*backends = []Backend{single, cluster} // no servers: the fuzz targets need none
		return m.Run()
	}
	if Binary() == "" || CLIBinary() == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "redis-server or redis-cli is not installed; CI must install them")
			return 1
		}
	}
	if Binary() != "" {
		s, err := Start()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer s.Stop()
		single.Addrs = []string{s.Addr}
	}
	if Binary() != "" && CLIBinary() != "" {
		c, err := StartCluster(3, 1)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Stop()
		cluster.Addrs = c.Addrs()
	}
	*backends = []Backend{single, cluster}
	return m.Run()
}

// Each runs test once per backend, as a subtest named after it; it skips
// (fails, in CI) a backend whose binaries are missing. It is the one way a
// suite runs on every backend: TestMain gives it the backends that
// MainBackends set.
func Each(t *testing.T, backends []Backend, test func(t *testing.T, b Backend)) {
	t.Helper()
	if len(backends) == 0 {
		t.Fatal("redistest: no backends (TestMain must call redistest.MainBackends)")
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			switch {
			case b.Embedded:
			case b.Cluster:
				RequireCluster(t)
			default:
				Require(t)
			}
			test(t, b)
		})
	}
}

var prefixSeq atomic.Int64

func newPrefix(tb testing.TB) string {
	return fmt.Sprintf("t%d%s", prefixSeq.Add(1), sanitize(tb.Name()))
}

// Client returns a client for addr and a key prefix unique to the test, so
// tests can share one server and run in parallel. The client is closed when
// the test ends.
func Client(tb testing.TB, addr string) (*redis.Client, string) {
	tb.Helper()
	Require(tb)
	if addr == "" {
		tb.Fatal("redistest: no server address (TestMain must call redistest.Main)")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redistest: ping: %v", err)
	}
	return rdb, newPrefix(tb)
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}
