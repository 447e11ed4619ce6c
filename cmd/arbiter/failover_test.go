package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// TestClusterFailover kills the master serving one HCP's slot while
// decisions run from several goroutines through the real server program,
// on a cluster of its own (3 masters, a replica each). It checks that
//
//   - decisions for HCPs whose slots other masters serve never fail;
//   - decisions for the failed master's HCPs fail only with Unavailable,
//     with no decision, and no successful decision for an HCP who opted out
//     of promotional email (set before the kill) ever recommends one;
//   - once the cluster reports the replica promoted, decisions for the
//     affected HCPs succeed again within 20 s (the time taken is logged: a
//     figure, not an assertion).
func TestClusterFailover(t *testing.T) {
	redistest.RequireCluster(t)
	cluster, err := redistest.StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop) // after the server's cleanup, which start registers next
	const n = 300
	// -consent-replicas 1: an opt-out is acknowledged only once a replica
	// has it, so the replica promoted below cannot have lost one.
	ts := start(t, redistest.Backend{Name: "cluster", Addrs: cluster.Addrs(), Cluster: true}, n, "-consent-replicas", "1")
	ctx := context.Background()
	opts := client.DecideOptions{Limit: 50}

	// Which HCPs the victim master serves.
	victim := demo.HCPID(1)
	victimKey := ts.cfg.RedisPrefix + ":{" + victim + "}:consent"
	oldMaster, err := cluster.MasterFor(victimKey)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	affected := map[string]bool{}
	for i := range ids {
		ids[i] = demo.HCPID(i + 1)
		m, err := cluster.MasterFor(ts.cfg.RedisPrefix + ":{" + ids[i] + "}:consent")
		if err != nil {
			t.Fatal(err)
		}
		affected[ids[i]] = m == oldMaster
	}

	// Every third HCP opts out of promotional email at their current
	// address: the most specific scope, which an older topic or address
	// opt-in cannot outrank. Some of them are recommended one now, or the
	// check below would prove nothing.
	optedOut := map[string]bool{}
	promoted := 0
	for i := 0; i < n; i += 3 {
		id := ids[i]
		d, err := ts.client.Decide(ctx, id, opts)
		if err != nil {
			t.Fatalf("decide %s before the opt-out: %v", id, err)
		}
		if promoEmail(d) != "" {
			promoted++
		}
		p, _, err := ts.client.GetProfile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ts.client.SetConsent(ctx, id, client.ConsentRecord{
			Channel: arbiter.Email, Purpose: arbiter.Promotional, AddressRef: p.Addresses[arbiter.Email],
			Status: client.ConsentOptOut, CapturedAt: time.Now(), Source: "preference-centre", CapturedBy: "failover-test",
		}, false)
		if err != nil {
			t.Fatalf("opt-out %s: %v", id, err)
		}
		optedOut[id] = true
	}
	if promoted == 0 {
		t.Fatal("no HCP to opt out is recommended promotional email: demo data or engine changed")
	}

	// Load: workers decide round the population until stopped, bounded in
	// count and time. More callers than the server's 4 auto-pipelining
	// workers, so that batches mix HCPs of the killed and live masters.
	const workers, maxCalls = 8, 50000
	runCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var (
		calls, affectedFails atomic.Int64
		lastFail             atomic.Int64 // unix ns of the last failed affected decision
		mu                   sync.Mutex
		violations           []string
	)
	violate := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	check := func(id string, d *client.Decision, err error) {
		switch {
		case err == nil:
			if optedOut[id] {
				if a := promoEmail(d); a != "" {
					violate("%s opted out of promotional email and was recommended %s", id, a)
				}
			}
		case !affected[id]:
			violate("%s (slot on a live master) failed: %v", id, err)
		case status.Code(err) != codes.Unavailable || d != nil:
			violate("%s (slot on the killed master) failed with %v and decision %v; want Unavailable and none", id, err, d)
		default:
			affectedFails.Add(1)
			lastFail.Store(time.Now().UnixNano())
		}
	}
	warm := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				case <-runCtx.Done():
					return
				default:
				}
				c := calls.Add(1)
				if c > maxCalls {
					return
				}
				if c == 2*n { // every HCP decided twice: kill now
					close(warm)
				}
				id := ids[i%n]
				d, err := ts.client.Decide(runCtx, id, opts)
				check(id, d, err)
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopLoad()
	select {
	case <-warm:
	case <-runCtx.Done():
		t.Fatal("load did not start")
	}

	killedAt := time.Now()
	killed, err := cluster.KillMasterFor(victimKey)
	if err != nil {
		t.Fatal(err)
	}
	if killed != oldMaster {
		t.Fatalf("killed %s, want the victim's master %s", killed, oldMaster)
	}
	newMaster, err := cluster.WaitForNewMaster(victimKey, killed, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	promotedAt := time.Now()

	// The victim's decisions succeed again within a bounded wait.
	var recoveredAt time.Time
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for recoveredAt.IsZero() {
		d, err := ts.client.Decide(ctx, victim, opts)
		check(victim, d, err)
		if err == nil {
			recoveredAt = time.Now()
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("decisions for %s still fail 20 s after %s was promoted: %v", victim, newMaster, err)
		}
	}
	// And so do every affected HCP's, at once: their slots moved together.
	nAffected := 0
	for _, id := range ids {
		if affected[id] {
			nAffected++
			d, err := ts.client.Decide(ctx, id, opts)
			if err != nil {
				t.Errorf("decide %s after recovery: %v", id, err)
			}
			check(id, d, err)
		}
	}
	stopLoad()

	t.Logf("%d decisions from %d goroutines; %d of %d HCPs on the killed master %s", calls.Load(), workers, nAffected, n, killed)
	t.Logf("replica %s promoted %v after the kill (cluster-node-timeout 1000 ms); decisions recovered %v after the promotion",
		newMaster, promotedAt.Sub(killedAt).Round(time.Millisecond), recoveredAt.Sub(promotedAt).Round(time.Millisecond))
	if f := affectedFails.Load(); f > 0 {
		t.Logf("%d affected decisions failed with Unavailable, the last %v after the kill",
			f, time.Unix(0, lastFail.Load()).Sub(killedAt).Round(time.Millisecond))
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// promoEmail returns the id of a promotional email recommended in d, or "".
func promoEmail(d *client.Decision) string {
	for _, r := range d.Recommendations {
		if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional {
			return r.ActionID
		}
	}
	return ""
}
