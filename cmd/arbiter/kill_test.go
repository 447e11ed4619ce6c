package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/servertest"
)

// The decision log when the server is killed outright (SIGKILL) under
// load, the real binary in its own process: in sync mode every decision
// that got an answer has its receipt; in async mode the receipts lost are
// at most the queue's bound.
func TestReceiptsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the server binary")
	}
	b := singleRedis(t)
	bin := buildServer(t)
	key := auditKeyFile(t)
	const queue = 64
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			prefix := "kill-" + mode
			common := []string{"-redis-addr", b.Addrs[0], "-redis-prefix", prefix}
			seedWith(t, bin, 200, common...)
			args := append([]string{"serve", "-listen", "127.0.0.1:0", "-catalog", demoCatalogFile, "-model", demoModelFile,
				"-consent-policy", demoPolicyFile, "-receipts", mode, "-receipt-queue", fmt.Sprint(queue), "-audit-key", key,
				"-durability", "off", "-log-level", "info"}, common...)
			srv, c := runServer(t, bin, nil, args...)

			var mu sync.Mutex
			var answered []string
			var n atomic.Int64
			enough := make(chan struct{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ctx.Err() == nil; i++ {
						d, err := c.Decide(ctx, demo.HCPID(1+(w*37+i)%200), client.DecideOptions{Limit: 3})
						if err != nil {
							return // the server is gone
						}
						mu.Lock()
						answered = append(answered, d.ID)
						mu.Unlock()
						if n.Add(1) == 2000 {
							close(enough)
						}
					}
				}()
			}
			select {
			case <-enough:
			case <-time.After(60 * time.Second):
				t.Fatal("2000 decisions did not come within 60 s")
			}
			if err := srv.Process.Kill(); err != nil { // SIGKILL, under load
				t.Fatal(err)
			}
			_ = srv.Wait()
			cancel()
			wg.Wait()

			rdb := redis.NewClient(&redis.Options{Addr: b.Addrs[0]})
			defer rdb.Close()
			stored := map[string]bool{}
			keys := rdb.Keys(context.Background(), prefix+":{*}:r").Val()
			for _, k := range keys {
				for _, m := range rdb.ZRange(context.Background(), k, 0, -1).Val() {
					id, _, _ := strings.Cut(m, "\n")
					stored[id] = true
				}
			}
			missing := 0
			for _, id := range answered {
				if !stored[id] {
					missing++
				}
			}
			t.Logf("%s: %d decisions answered before the kill, %d receipts stored, %d answered without one", mode, len(answered), len(stored), missing)
			switch {
			case mode == "sync" && missing > 0:
				t.Errorf("sync: %d answered decisions have no receipt", missing)
			case mode == "async" && missing > queue+2*256:
				// At most the queue, plus the two batches being written.
				t.Errorf("async: %d answered decisions lost their receipt, more than the queue (%d) and the batches in flight", missing, queue)
			}
		})
	}
}

// buildServer builds this program, for tests that run it in a process of
// its own.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "arbiter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// seedWith loads the demo population of n with the built server.
func seedWith(t *testing.T, bin string, n int, flags ...string) {
	t.Helper()
	args := append([]string{"seed", "-demo-size", fmt.Sprint(n), "-log-level", "warn"}, flags...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
}

// runServer starts the built server with args and env (added to this
// process's), stopped at the test's end, and a client of it.
func runServer(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, *client.Client) {
	t.Helper()
	srv := exec.Command(bin, args...)
	srv.Env = append(os.Environ(), env...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	c, err := client.Dial(listenAddr(t, stderr), client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// A decision logged by a server on a CPU with fused multiply-add replays
// to the bit on one without: the same binary, the second with the CPU's
// FMA hidden from Go (GODEBUG=cpu.fma=off), which changes math.Exp's low
// bits (scoring/exp_test.go); scoring does not use it.
func TestReplayIsIdenticalWithoutFMA(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	b := singleRedis(t)
	bin := buildServer(t)
	key := auditKeyFile(t)
	common := []string{"-redis-addr", b.Addrs[0], "-redis-prefix", "fma"}
	seedWith(t, bin, 300, common...)
	args := append([]string{"serve", "-listen", "127.0.0.1:0", "-catalog", demoCatalogFile, "-model", demoModelFile,
		"-consent-policy", demoPolicyFile, "-contact-policy", demoContactFile, "-rules", demoRulesFile,
		"-receipts", "sync", "-audit-key", key, "-durability", "off", "-log-level", "info"}, common...)
	logged, lc := runServer(t, bin, nil, args...)
	ctx := context.Background()
	var ids []string
	for i := 1; i <= 300; i++ {
		d, err := lc.Decide(ctx, demo.HCPID(i), client.DecideOptions{Limit: 5, Explain: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	_ = logged.Process.Kill()
	_ = logged.Wait()
	_, rc := runServer(t, bin, []string{"GODEBUG=cpu.fma=off"}, args...)
	for _, id := range ids {
		rp, err := rc.ReplayDecision(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !rp.GetIdentical() {
			t.Fatalf("decision %s, logged with FMA, replayed without: %q %v", id, rp.GetNotReplayable(), rp.GetDifferences())
		}
	}
	t.Logf("%d decisions logged with FMA replay identically without it", len(ids))
}

// listenAddr reads the server's log until it says where it serves.
func listenAddr(t *testing.T, stderr io.Reader) string {
	t.Helper()
	addr, err := servertest.ListenAddr(stderr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
