package consent

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// A bar is lifted by a later "cleared" record of the same channel, which
// replaces it; a cleared captured at the same instant as the bar loses.
func TestClearedLiftsABar(t *testing.T) {
	storeTest(t, func(t *testing.T, st *Store, _ redis.UniversalClient, _ string) {
		ctx := context.Background()
		bar := Record{Channel: arbiter.Email, Status: Barred, CapturedAt: now.Add(-2 * time.Hour), Source: "crm"}
		tie := Record{Channel: arbiter.Email, Status: Cleared, CapturedAt: bar.CapturedAt, Source: "crm"}
		lift := Record{Channel: arbiter.Email, Status: Cleared, CapturedAt: now.Add(-time.Hour), Source: "crm"}
		optIn := Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: OptIn, CapturedAt: now.Add(-time.Hour), Source: "crm"}
		q := Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Market: "EU", At: now}
		p := DefaultPolicy()
		want := []struct {
			r       Record
			applied bool
			outcome Outcome
		}{
			{bar, true, DeniedBarred},
			{optIn, true, DeniedBarred},
			{tie, false, DeniedBarred},
			{lift, true, Allowed},
		}
		for i, w := range want {
			e, err := st.Set(ctx, "HCP-1", w.r, true)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if e.Applied != w.applied {
				t.Errorf("step %d (%v): applied = %v, want %v", i, w.r.Status, e.Applied, w.applied)
			}
			s, err := st.Get(ctx, "HCP-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Evaluate(&s, q).Outcome; got != w.outcome {
				t.Errorf("step %d (%v): promotional email is %v, want %v", i, w.r.Status, got, w.outcome)
			}
		}
	})
}
