package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// A bar is lifted by a later "cleared" record of the same channel, which
// replaces it; a cleared captured at the same instant as the bar loses.
func TestClearedLiftsABar(t *testing.T) {
	eachBackendAndMiniredis(t, func(t *testing.T, b redistest.Backend) {
		s, _ := newConsentStore(t, b)
		ctx := context.Background()
		bar := consent.Record{Channel: arbiter.Email, Status: consent.Barred, CapturedAt: now.Add(-2 * time.Hour), Source: "crm"}
		tie := consent.Record{Channel: arbiter.Email, Status: consent.Cleared, CapturedAt: bar.CapturedAt, Source: "crm"}
		lift := consent.Record{Channel: arbiter.Email, Status: consent.Cleared, CapturedAt: now.Add(-time.Hour), Source: "crm"}
		in := consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: consent.OptIn, CapturedAt: now.Add(-time.Hour), Source: "crm"}
		q := consent.Query{Channel: arbiter.Email, Purpose: arbiter.Promotional, Market: "EU", At: now}
		p := consent.DefaultPolicy()
		steps := []struct {
			r       consent.Record
			applied bool
			outcome consent.Outcome
		}{
			{bar, true, consent.DeniedBarred},
			{in, true, consent.DeniedBarred},
			{tie, false, consent.DeniedBarred},
			{lift, true, consent.Allowed},
		}
		for i, w := range steps {
			e, err := s.SetConsent(ctx, "HCP-1", w.r, true)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if e.Applied != w.applied || e.Seq != int64(i) {
				t.Errorf("step %d (%v): applied = %v, seq = %d; want %v, %d", i, w.r.Status, e.Applied, e.Seq, w.applied, i)
			}
			st, err := s.GetConsent(ctx, "HCP-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Evaluate(&st, q).Outcome; got != w.outcome {
				t.Errorf("step %d (%v): promotional email is %v, want %v", i, w.r.Status, got, w.outcome)
			}
		}
	})
}
