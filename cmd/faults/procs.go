package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// pinned returns the command line that runs argv on the given CPU list
// with taskset, or argv itself when pinning is off.
func pinned(cpus string, argv ...string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// redisProc is a redis-server child with AOF on (fsync on every write), on
// a fixed port and directory, so that it can be killed, frozen and started
// again on the same data.
type redisProc struct {
	bin, dir, cpus string
	port           int
	cmd            *exec.Cmd
	exited         chan struct{}
}

func newRedis(bin, dir, cpus string) (*redisProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisProc{bin: bin, dir: dir, cpus: cpus, port: port}
	return r, r.start()
}

func (r *redisProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *redisProc) start() error {
	conf := strings.Join([]string{
		"port " + strconv.Itoa(r.port), "bind 127.0.0.1", "dir " + r.dir, `save ""`,
		"appendonly yes", "appendfsync always", "logfile " + filepath.Join(r.dir, "redis.log"),
	}, "\n") + "\n"
	argv := pinned(r.cpus, r.bin, "-")
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Stdin = strings.NewReader(conf)
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.exited)
	return r.waitReady(20 * time.Second)
}

// waitReady polls PING until Redis answers (it loads the AOF first).
func (r *redisProc) waitReady(timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("redis-server exited: %s", tail(filepath.Join(r.dir, "redis.log")))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer within %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond) // a readiness poll
	}
}

func (r *redisProc) signal(sig syscall.Signal) error { return r.cmd.Process.Signal(sig) }

// kill stops Redis with sig and waits for the process to end.
func (r *redisProc) kill(sig syscall.Signal) error {
	if err := r.signal(sig); err != nil {
		return err
	}
	select {
	case <-r.exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("redis-server did not exit within 30 s of %v", sig)
	}
}

func (r *redisProc) stop() {
	_ = r.signal(syscall.SIGCONT)
	_ = r.kill(syscall.SIGKILL)
}

// proxy forwards TCP connections to Redis, adding delay to every reply
// chunk: a slow Redis, or a slow network to it.
type proxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) handle(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d) // the fault itself: a reply that arrives late
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	up.Close()
	c.Close()
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// serverProc is the arbiter binary serving on a fixed address, so that
// clients find it again after a restart.
type serverProc struct {
	bin, listen, cpus string
	metricsURL        string
	args              []string
	cmd               *exec.Cmd
	exited            chan struct{}
	exitErr           error
	log               *os.File
}

func (s *serverProc) start() error {
	argv := pinned(s.cpus, append([]string{s.bin, "serve", "-listen", s.listen}, s.args...)...)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	serving := make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Bytes()
			if s.log != nil {
				_, _ = s.log.Write(append(line, '\n'))
			}
			var rec struct{ Msg string }
			if !once && json.Unmarshal(line, &rec) == nil && rec.Msg == "arbiter serving" {
				once = true
				close(serving)
			}
		}
		s.exitErr = cmd.Wait()
		close(done)
	}(s.cmd, s.exited)
	select {
	case <-serving:
		return nil
	case <-s.exited:
		return fmt.Errorf("arbiter exited before serving: %v", s.exitErr)
	case <-time.After(60 * time.Second):
		return errors.New("arbiter did not start serving within 60 s")
	}
}

func (s *serverProc) pid() int { return s.cmd.Process.Pid }

// waitExit waits for the server to end, at most timeout.
func (s *serverProc) waitExit(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	select {
	case <-s.exited:
		return time.Since(t0), nil
	case <-time.After(timeout):
		return time.Since(t0), fmt.Errorf("arbiter did not exit within %s", timeout)
	}
}

func (s *serverProc) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// rssKiB reads a process's resident set from /proc.
func rssKiB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}
