package features

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// An unsubscribe event must take effect as an opt-out on its channel, and
// a repeated delivery must neither lose nor duplicate the opt-out.
func TestUnsubscribeEventRecordsOptOut(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		t.Fatal(err)
	}
	in := optIn(arbiter.Email, arbiter.Promotional, t0.Add(-48*time.Hour))
	if _, err := s.consent.SetMany(ctx, "hcp-1", []consent.Record{in}, true); err != nil {
		t.Fatal(err)
	}
	ev := Event{ID: "unsub-1", HCPID: "hcp-1", Type: arbiter.EventUnsubscribed, Channel: arbiter.Email, OccurredAt: t0.Add(-time.Hour)}
	for i, wantDup := range []bool{false, true} {
		dup, err := s.ApplyEvent(ctx, ev)
		if err != nil || dup != wantDup {
			t.Fatalf("delivery %d: duplicate=%v err=%v, want duplicate=%v", i+1, dup, err, wantDup)
		}
	}
	snap, err := s.Load(ctx, "hcp-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	v := consent.DefaultPolicy().Evaluate(&snap.Consent, consent.Query{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Address: snap.Profile.Addresses[arbiter.Email], Market: snap.Profile.Market, At: t0})
	if v.Outcome != consent.DeniedOptOut {
		t.Fatalf("after unsubscribe, promotional email is %v, want denied_opt_out", v.Outcome)
	}
	rec := snap.Consent.Records[v.Record]
	if rec.Source != "unsubscribe-event" || rec.CapturedBy != "unsub-1" || !rec.CapturedAt.Equal(ev.OccurredAt) {
		t.Errorf("decisive record = %+v, want the unsubscribe event's opt-out", rec)
	}
	if st := snap.Consent; len(st.Records) != 1 {
		t.Errorf("consent records = %d, want the opt-out alone (it replaced the older opt-in of the same scope)", len(st.Records))
	}
	hist, total, err := s.consent.History(ctx, "hcp-1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || !hist[1].Applied || hist[2].Applied {
		t.Errorf("ledger = %d entries (applied %v), want the opt-in, the applied opt-out and the repeat not applied",
			total, []bool{hist[0].Applied, hist[1].Applied, hist[len(hist)-1].Applied})
	}
}
