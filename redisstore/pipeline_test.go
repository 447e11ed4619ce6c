package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// TestAutoPipelineConcurrentLoads runs many loads at once through shared
// pipelines and checks every caller gets its own HCP's data, that missing
// HCPs are still NotFound, and that the loads did share round trips.
func TestAutoPipelineConcurrentLoads(t *testing.T) { eachBackend(t, testAutoPipelineConcurrentLoads) }

func testAutoPipelineConcurrentLoads(t *testing.T, b redistest.Backend) {
	s, rdb, _ := newStoreOn(t, b, WithAutoPipeline(2, 64, 5*time.Second))
	t.Cleanup(s.Close)
	ctx := context.Background()
	const n = 40
	for i := range n {
		p := hcpProfile(fmt.Sprintf("hcp-%d", i))
		p.Attributes = map[string]float64{"decile": float64(i)}
		if err := s.UpsertProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := s.SetConsentMany(ctx, p.HCPID, []consent.Record{optIn(arbiter.Email, arbiter.Medical, t0)}, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := &redistest.RoundTrips{}
	h.AddToNodes(t, rdb)
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan error, n*rounds+rounds)
	start := make(chan struct{})
	for i := range n + 1 { // one more: an HCP that does not exist
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("hcp-%d", i)
			for range rounds {
				snap, err := s.Load(ctx, id, t0)
				switch {
				case i == n:
					if !errors.Is(err, arbiter.ErrNotFound) {
						errs <- fmt.Errorf("%s: err = %v, want ErrNotFound", id, err)
					}
				case err != nil:
					errs <- fmt.Errorf("%s: %v", id, err)
				case snap.Profile.HCPID != id || snap.Profile.Attributes["decile"] != float64(i):
					errs <- fmt.Errorf("%s: got the profile of %s (decile %v)", id, snap.Profile.HCPID, snap.Profile.Attributes["decile"])
				case snap.Consent.Complete != (i%2 == 0) || len(snap.Consent.Records) != map[bool]int{true: 1, false: 0}[i%2 == 0]:
					errs <- fmt.Errorf("%s: got consent %+v", id, snap.Consent)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	loads := int64((n + 1) * rounds)
	if trips := h.N(); trips > loads || trips < 1 {
		t.Errorf("%d loads took %d round trips, want between 1 and %d", loads, trips, loads)
	}
	t.Logf("%d loads in %d round trips", loads, h.N())
}

func TestAutoPipelineCallerGivesUp(t *testing.T) { eachBackend(t, testAutoPipelineCallerGivesUp) }

func testAutoPipelineCallerGivesUp(t *testing.T, b redistest.Backend) {
	s, _, _ := newStoreOn(t, b, WithAutoPipeline(1, 8, 5*time.Second))
	t.Cleanup(s.Close)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Load(cancelled, "hcp-1", t0); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: err = %v, want context.Canceled", err)
	}
	// The store keeps working for others.
	if snap, err := s.Load(ctx, "hcp-1", t0); err != nil || snap.Profile.HCPID != "hcp-1" {
		t.Errorf("Load after a cancelled one: %v, %v", snap, err)
	}
}

func TestAutoPipelineRedisDown(t *testing.T) {
	s := mustNew(t, unreachableClient(t), WithAutoPipeline(2, 8, time.Second))
	t.Cleanup(s.Close)
	if _, err := s.Load(context.Background(), "hcp-1", t0); !errors.Is(err, arbiter.ErrUnavailable) {
		t.Errorf("Load with Redis down: err = %v, want ErrUnavailable", err)
	}
}
