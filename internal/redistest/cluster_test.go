package redistest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterFailover checks the harness itself: a 3x1 cluster forms, a
// key's master can be found and killed, and its replica takes over.
func TestClusterFailover(t *testing.T) {
	RequireCluster(t)
	c, err := StartCluster(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got := len(c.Addrs()); got != 6 {
		t.Fatalf("Addrs() has %d nodes, want 6", got)
	}
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "{k}x", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReplicated(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	old, err := c.KillMasterFor("{k}x")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(c.Addrs(), old) {
		t.Errorf("Addrs() still lists the killed node %s", old)
	}
	start := time.Now()
	promoted, err := c.WaitForNewMaster("{k}x", old, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("master %s killed; %s promoted after %v", old, promoted, time.Since(start).Round(time.Millisecond))
	if promoted == old || !slices.Contains(c.Addrs(), promoted) {
		t.Errorf("new master %s, want a live node other than %s", promoted, old)
	}
	// The write made before the kill survived on the promoted replica.
	direct := redis.NewClient(&redis.Options{Addr: promoted})
	defer direct.Close()
	if got, err := direct.Get(ctx, "{k}x").Result(); err != nil || got != "v" {
		t.Errorf("GET on the new master = %q, %v; want v", got, err)
	}
}
