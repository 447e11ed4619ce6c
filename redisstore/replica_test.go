package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// With replica acknowledgement, a write is acknowledged only once a replica
// has it: on the cluster (one replica per master) it succeeds; on a single
// node without replicas it is reported as not durable, so the caller retries.
func TestReplicaAck(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		timeout := 100 * time.Millisecond // nothing to wait for on a single node
		if b.Cluster {
			timeout = 5 * time.Second
		}
		s, _, c := newStoreOn(t, b, WithReplicaAck(1, timeout))
		c.t = now
		ctx := context.Background()
		r := consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: consent.OptOut, CapturedAt: now, Source: "crm"}
		entry, err := s.SetConsent(ctx, "HCP-1", r, true)
		if !b.Cluster {
			if !errors.Is(err, arbiter.ErrUnavailable) {
				t.Fatalf("single node without replicas: err = %v, want ErrUnavailable", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("SetConsent with a replica: %v", err)
		}
		if !entry.Applied || entry.Seq != 0 {
			t.Errorf("entry = %+v, want the first ledger entry, applied", entry)
		}
		got, err := s.GetConsent(ctx, "HCP-1")
		if err != nil || !got.Complete || len(got.Records) != 1 || got.Records[0].Status != consent.OptOut {
			t.Errorf("GetConsent = %+v, %v; want the opt-out and the marker", got, err)
		}
	})
	t.Run("other client", func(t *testing.T) {
		// WAIT must go to the connection that wrote: a client that is
		// neither a single Redis nor a cluster cannot say which that is.
		// The write is refused before anything is sent.
		s := mustNew(t, otherClient{unreachableClient(t)}, WithReplicaAck(1, time.Second))
		_, err := s.SetConsent(context.Background(), "HCP-1", rec(arbiter.Email, arbiter.Medical, consent.OptIn, t0), true)
		if err == nil || !strings.Contains(err.Error(), "replica acknowledgement needs") {
			t.Errorf("SetConsent through another client = %v, want the refusal", err)
		}
	})
}

// otherClient is a redis.UniversalClient that is neither a *redis.Client
// nor a *redis.ClusterClient (as a Ring or a wrapper would be).
type otherClient struct{ redis.UniversalClient }
