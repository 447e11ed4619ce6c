package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterConf is the configuration every node of a test cluster gets, before
// the extra lines StartCluster is given (a later line wins).
var clusterConf = []string{
	"cluster-enabled yes",
	// A master that does not answer for 1 s is failed (PFAIL, then FAIL by
	// majority); its replica is promoted about a second after that.
	"cluster-node-timeout 1000",
	// A replica may take over however long it has been since it last
	// heard from its master: tests kill masters at will.
	"cluster-replica-validity-factor 0",
	// While one master's slots fail over, the others keep serving theirs,
	// as a production cluster for Arbiter must be configured (see
	// bench/CLUSTER.md). The default, yes, stops every slot until then.
	"cluster-require-full-coverage no",
	// A replica's first sync starts at once, rather than after the 5 s a
	// diskless master waits by default for more replicas to share it.
	"repl-diskless-sync-delay 0",
}

// Cluster is a Redis Cluster of redis-server child processes on loopback
// ports, created with redis-cli --cluster create.
type Cluster struct {
	mu    sync.Mutex
	nodes []*Server
	dead  map[string]bool // addresses of killed nodes
}

// CLIBinary returns the path of redis-cli, or "" when it is not installed.
func CLIBinary() string {
	if p := os.Getenv("REDIS_CLI_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-cli")
	if err != nil {
		return ""
	}
	return p
}

// RequireCluster is Require for tests that need a cluster: redis-server
// and redis-cli.
func RequireCluster(tb testing.TB) {
	tb.Helper()
	Require(tb)
	if CLIBinary() == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-cli is not installed; CI must install it (apt-get install redis-tools)")
		}
		tb.Skip("redis-cli is not installed; skipping cluster test")
	}
}

// StartCluster starts masters*(1+replicasPerMaster) redis-server processes
// in cluster mode (clusterConf, then extra: a later line wins), creates a
// cluster of them with redis-cli (masters >= 3: redis-cli refuses fewer)
// and returns once every node reports cluster_state:ok, knows every other
// node and sees all 16384 slots served, and every replica's link to its
// master is up. The caller must Stop it.
func StartCluster(masters, replicasPerMaster int, extra ...string) (*Cluster, error) {
	if masters < 3 || replicasPerMaster < 0 {
		return nil, fmt.Errorf("redistest: start cluster: want at least 3 masters and no negative replicas, got %d and %d", masters, replicasPerMaster)
	}
	bin, cli := Binary(), CLIBinary()
	if bin == "" || cli == "" {
		return nil, errors.New("redistest: start cluster: redis-server or redis-cli not installed")
	}
	n := masters * (1 + replicasPerMaster)
	c := &Cluster{dead: map[string]bool{}}
	conf := append(append([]string(nil), clusterConf...), extra...)
	for range n {
		s, err := startClusterNode(bin, conf)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("redistest: start cluster: %w", err)
		}
		c.nodes = append(c.nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v: %s", err, lastLines(string(out), 5))
	}
	if err := c.waitReady(masters*replicasPerMaster, 30*time.Second); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: start cluster: %w", err)
	}
	return c, nil
}

// startClusterNode starts one node in a directory of its own, on a free
// port with a free cluster bus port (not port+10000, which may be taken).
func startClusterNode(bin string, conf []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "arbiter-redis-cluster-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			lastErr = err
			continue
		}
		s, err := startOn(bin, dir, ports[0], append([]string{"cluster-port " + strconv.Itoa(ports[1])}, conf...))
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// Addrs returns the addresses of the nodes that have not been killed.
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, s := range c.nodes {
		if !c.dead[s.Addr] {
			addrs = append(addrs, s.Addr)
		}
	}
	return addrs
}

// Stop kills every node and removes their directories.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	adminMu.Lock()
	defer adminMu.Unlock()
	for _, s := range c.nodes {
		s.Stop()
		if rdb, ok := adminClients[s.Addr]; ok {
			rdb.Close()
			delete(adminClients, s.Addr)
		}
	}
}

// MasterFor returns the address of the master that serves key's slot, as
// a live node reports it now.
func (c *Cluster) MasterFor(key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lastErr error
	for _, addr := range c.Addrs() {
		master, err := masterFor(ctx, addr, key)
		if err == nil {
			return master, nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("redistest: master for key: %w", lastErr)
}

// KillMasterFor kills (SIGKILL) the master serving key's slot and returns
// its address. The node stays dead; its replica is promoted by the cluster.
func (c *Cluster) KillMasterFor(key string) (string, error) {
	addr, err := c.MasterFor(key)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.nodes {
		if s.Addr == addr {
			s.Kill()
			c.dead[addr] = true
			return addr, nil
		}
	}
	return "", fmt.Errorf("redistest: kill master: %s is not a node of this cluster", addr)
}

// WaitForNewMaster polls, until timeout, for every live node to report
// key's slot served by the same master, other than old, and returns that
// master's address.
func (c *Cluster) WaitForNewMaster(key, old string, timeout time.Duration) (string, error) {
	var last string
	err := poll(timeout, func(ctx context.Context) (bool, error) {
		var agreed string
		for _, addr := range c.Addrs() {
			m, err := masterFor(ctx, addr, key)
			if err != nil || m == old || (agreed != "" && m != agreed) {
				last = fmt.Sprintf("node %s reports %q (err %v)", addr, m, err)
				return false, nil
			}
			agreed = m
		}
		last = agreed
		return agreed != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("redistest: no new master for the slot after %v: last %s: %w", timeout, last, err)
	}
	return last, nil
}

// WaitReplicated waits until every live replica has acknowledged the
// replication offset its master had when WaitReplicated was called: the
// writes made before are then on the replicas, and survive a failover.
// (Redis replicates asynchronously: without this a write acknowledged just
// before a master dies may be missing on the replica that takes over.)
func (c *Cluster) WaitReplicated(timeout time.Duration) error {
	targets := map[string]int64{} // master address -> offset to reach
	err := poll(timeout, func(ctx context.Context) (bool, error) {
		for _, addr := range c.Addrs() {
			info, err := adminClient(addr).Info(ctx, "replication").Result()
			if err != nil {
				return false, nil
			}
			f := infoFields(info)
			if f["role"] != "master" {
				continue
			}
			target, ok := targets[addr]
			if !ok {
				target, _ = strconv.ParseInt(f["master_repl_offset"], 10, 64)
				targets[addr] = target
			}
			n, _ := strconv.Atoi(f["connected_slaves"])
			for i := range n {
				// slave0:ip=127.0.0.1,port=7001,state=online,offset=1234,lag=0
				var off int64
				for _, kv := range strings.Split(f["slave"+strconv.Itoa(i)], ",") {
					if v, ok := strings.CutPrefix(kv, "offset="); ok {
						off, _ = strconv.ParseInt(v, 10, 64)
					}
				}
				if off < target {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("redistest: replicas did not catch up in %v: %w", timeout, err)
	}
	return nil
}

// waitReady polls until the cluster is fully formed.
func (c *Cluster) waitReady(replicas int, timeout time.Duration) error {
	nodes := c.Addrs()
	var last string
	err := poll(timeout, func(ctx context.Context) (bool, error) {
		linked := 0
		for _, addr := range nodes {
			rdb := adminClient(addr)
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				last = err.Error()
				return false, nil
			}
			f := infoFields(info)
			if f["cluster_state"] != "ok" || f["cluster_slots_ok"] != "16384" || f["cluster_known_nodes"] != strconv.Itoa(len(nodes)) {
				last = fmt.Sprintf("%s: state %s, slots ok %s, known nodes %s", addr, f["cluster_state"], f["cluster_slots_ok"], f["cluster_known_nodes"])
				return false, nil
			}
			repl, err := rdb.Info(ctx, "replication").Result()
			if err != nil {
				last = err.Error()
				return false, nil
			}
			r := infoFields(repl)
			if r["role"] == "slave" && r["master_link_status"] == "up" {
				linked++
			}
		}
		last = fmt.Sprintf("%d of %d replicas linked to their master", linked, replicas)
		return linked == replicas, nil
	})
	if err != nil {
		return fmt.Errorf("cluster not ready after %v: %s: %w", timeout, last, err)
	}
	return nil
}

// masterFor asks the node at addr which master serves key's slot.
func masterFor(ctx context.Context, addr, key string) (string, error) {
	rdb := adminClient(addr)
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", err
	}
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr, nil
		}
	}
	return "", fmt.Errorf("slot %d is not served", slot)
}

// adminClients are the clients redistest uses to inspect nodes, one per
// address, closed when their cluster stops.
var (
	adminMu      sync.Mutex
	adminClients = map[string]*redis.Client{}
)

func adminClient(addr string) *redis.Client {
	adminMu.Lock()
	defer adminMu.Unlock()
	rdb, ok := adminClients[addr]
	if !ok {
		// No retries and short timeouts: a dead node must fail fast, and
		// the caller polls anyway.
		rdb = redis.NewClient(&redis.Options{
			Addr: addr, MaxRetries: -1, DialerRetries: 1,
			DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, PoolSize: 2,
		})
		adminClients[addr] = rdb
	}
	return rdb
}

// poll calls check every 50 ms until it reports done, returns an error or
// timeout passes. It is readiness polling, bounded, never a test's
// synchronisation by sleeping.
func poll(timeout time.Duration, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// infoFields parses INFO or CLUSTER INFO output into its fields.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			f[k] = v
		}
	}
	return f
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
