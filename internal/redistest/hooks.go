package redistest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook that counts the round trips a client
// makes (a command sent on its own, or a pipeline: one each) and the
// connections it dials, and keeps the key of every pipelined command. The
// handshake of a new connection (HELLO, CLIENT SETINFO, AUTH) and the slot
// map a cluster client re-reads (CLUSTER) are not a caller's work and are
// not counted. The tests that prove "one round trip per decision" read it.
type RoundTrips struct {
	n, dials atomic.Int64
	mu       sync.Mutex
	keys     []string
}

// N is the number of round trips counted.
func (h *RoundTrips) N() int64 { return h.n.Load() }

// Dials is the number of connections dialled.
func (h *RoundTrips) Dials() int64 { return h.dials.Load() }

// Reset sets every count to zero and forgets the keys.
func (h *RoundTrips) Reset() {
	h.n.Store(0)
	h.dials.Store(0)
	h.mu.Lock()
	h.keys = nil
	h.mu.Unlock()
}

// PipelinedKeys returns the first argument (the key) of every pipelined
// command since the last Reset, sorted.
func (h *RoundTrips) PipelinedKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := slices.Clone(h.keys)
	slices.Sort(keys)
	return keys
}

func (h *RoundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.dials.Add(1)
		return next(ctx, network, addr)
	}
}

func (h *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "cluster":
		default:
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		h.mu.Lock()
		for _, c := range cmds {
			if args := c.Args(); len(args) > 1 {
				h.keys = append(h.keys, fmt.Sprint(args[1]))
			}
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// AddToNodes adds h where it sees each round trip on the network and each
// dial: on a single Redis, the client; on a Redis Cluster, every node's
// client. (A ClusterClient's own hooks see a pipeline once, before go-redis
// splits it by node, and never see a dial.)
func (h *RoundTrips) AddToNodes(tb testing.TB, rdb redis.UniversalClient) {
	tb.Helper()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		rdb.AddHook(h)
		return
	}
	err := cc.ForEachShard(context.Background(), func(_ context.Context, node *redis.Client) error {
		node.AddHook(h)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
