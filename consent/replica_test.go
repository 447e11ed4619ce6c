package consent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// With replica acknowledgement, a write is acknowledged only once a replica
// has it: on the cluster (one replica per master) it succeeds; on a single
// node without replicas it is reported as not durable, so the caller retries.
func TestReplicaAck(t *testing.T) {
	for _, b := range redisBackends {
		t.Run(b.Name, func(t *testing.T) {
			rdb, prefix := b.Client(t)
			timeout := 100 * time.Millisecond // nothing to wait for on a single node
			if b.Cluster {
				timeout = 5 * time.Second
			}
			st := NewStore(rdb, WithPrefix(prefix), WithClock(func() time.Time { return now }),
				WithReplicaAck(1, timeout))
			ctx := context.Background()
			r := Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: OptOut, CapturedAt: now, Source: "crm"}
			entry, err := st.Set(ctx, "HCP-1", r, true)
			if !b.Cluster {
				if !errors.Is(err, arbiter.ErrUnavailable) {
					t.Fatalf("single node without replicas: err = %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Set with a replica: %v", err)
			}
			if !entry.Applied || entry.Seq != 0 {
				t.Errorf("entry = %+v, want the first ledger entry, applied", entry)
			}
			got, err := st.Get(ctx, "HCP-1")
			if err != nil || !got.Complete || len(got.Records) != 1 || got.Records[0].Status != OptOut {
				t.Errorf("Get = %+v, %v; want the opt-out and the marker", got, err)
			}
		})
	}
}
