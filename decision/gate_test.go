package decision

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/scoring"
)

// reasonQuietHours is a new reason, declared by the toy gate's own file as
// a real gate declares its reasons (the API would add one enum line).
const reasonQuietHours Reason = "toy_night_sms"

// quietHoursGate is a toy gate: SMS is held back from 22:00 to 08:00 UTC,
// a block that clears at 08:00.
type quietHoursGate struct{}

func (quietHoursGate) Reasons() []Reason { return []Reason{reasonQuietHours} }

func (quietHoursGate) Check(in *GateInput, b *Block) bool {
	if in.Action.Channel != arbiter.SMS {
		return false
	}
	h := in.At.UTC().Hour()
	if h >= 8 && h < 22 {
		return false
	}
	day := in.At.UTC().Truncate(24 * time.Hour)
	clears := day.Add(8 * time.Hour)
	if h >= 22 {
		clears = clears.Add(24 * time.Hour)
	}
	*b = Block{Reason: reasonQuietHours, ClearsAt: clears,
		Detail: detail(in, func() string { return "quiet hours until 08:00 UTC" })}
	return true
}

// A gate added through WithGates holds a candidate back with its own
// reason, detail and clears_at, and joins the engine's reasons.
func TestToyGateInADecision(t *testing.T) {
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-1": usCardiologist()}}, scoring.Demo(), cat,
		consent.DefaultPolicy(), WithClock(func() time.Time { return now }), WithGates(quietHoursGate{}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.Reasons(), reasonQuietHours) {
		t.Errorf("Reasons() = %v, want it to hold %s", e.Reasons(), reasonQuietHours)
	}
	night := time.Date(2026, 11, 20, 23, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		at      time.Time
		blocked bool
	}{{night, true}, {now, false}} {
		res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 5, At: tt.at, Explain: true,
			Candidates: []string{"sms-reminder", "email-medical"}})
		if err != nil {
			t.Fatal(err)
		}
		var got *Suppression
		for i := range res.Suppressed {
			if res.Suppressed[i].ActionID == "sms-reminder" {
				got = &res.Suppressed[i]
			}
		}
		if !tt.blocked {
			if got != nil {
				t.Errorf("at %v: sms-reminder suppressed (%+v), want it allowed by day", tt.at, *got)
			}
			continue
		}
		want := Suppression{ActionID: "sms-reminder", Reason: reasonQuietHours, Detail: "quiet hours until 08:00 UTC",
			ClearsAt: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
		if got != nil {
			want.Index = got.Index // its place in the catalog: not what is tested here
		}
		if got == nil || *got != want {
			t.Errorf("at %v: sms-reminder suppressed as %+v, want %+v", tt.at, got, want)
		}
	}
}

// CheckAll reports every gate's block, where Decide shows the first.
func TestCheckAllReportsEveryBlock(t *testing.T) {
	st := usCardiologist()
	st.Counters.LastContact[arbiter.SMS] = now.Add(-24 * time.Hour) // within the 72h gap
	e := newEngine(t, map[string]*recipient.State{"HCP-1": st})
	req := Request{HCPID: "HCP-1", Limit: 3, Explain: true, Channels: []arbiter.Channel{arbiter.Email},
		Candidates: []string{"sms-reminder", "email-ok", "email-pending"}}
	checks, err := e.CheckAll(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string][]Reason{}
	for _, c := range checks {
		for _, b := range c.Blocks {
			reasons[c.ActionID] = append(reasons[c.ActionID], b.Reason)
			if b.Detail == "" {
				t.Errorf("%s: %s block has no detail", c.ActionID, b.Reason)
			}
		}
	}
	want := map[string][]Reason{
		// Not asked about, and within the contact gap.
		"sms-reminder": {ChannelNotRequested, MinGap},
		// US email is opt-out by default and the consent is complete.
		"email-ok": nil,
		// Pending MLR approval, and promotional email needs nothing more.
		"email-pending": {ContentNotApproved},
	}
	for id, w := range want {
		if got := reasons[id]; !slices.Equal(got, w) {
			t.Errorf("%s: blocks %v, want %v", id, got, w)
		}
	}
	res, err := e.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Suppressed {
		if s.ActionID == "sms-reminder" && s.Reason != ChannelNotRequested {
			t.Errorf("Decide shows sms-reminder as %s, want the first block, %s", s.Reason, ChannelNotRequested)
		}
	}
}

// Blocks that lift by themselves say when: a contact gap, and content
// whose approval starts later. An opt-out never does.
func TestClearsAt(t *testing.T) {
	cat, err := catalog.Parse([]byte(`{"version": "c", "min_gap": {"sms": "72h"}, "actions": [
	  {"id": "sms", "channel": "sms", "content_id": "S", "purpose": "service", "audience": "hcp", "value": 1,
	   "approval": {"status": "approved", "id": "M1", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US"]}},
	  {"id": "email-later", "channel": "email", "content_id": "E", "purpose": "service", "audience": "hcp", "value": 1,
	   "approval": {"status": "approved", "id": "M2", "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US"]}},
	  {"id": "email-promo", "channel": "email", "content_id": "P", "purpose": "promotional", "audience": "hcp", "value": 1,
	   "approval": {"status": "approved", "id": "M3", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US"]}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	st := usCardiologist()
	last := now.Add(-24 * time.Hour)
	st.Counters.LastContact[arbiter.SMS] = last
	st.Consent.Records = append(st.Consent.Records, consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Status: consent.OptOut, CapturedAt: now.AddDate(0, 0, -2), Source: "crm"})
	e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-1": st}}, scoring.Demo(), cat, consent.DefaultPolicy(),
		WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Suppression{
		"sms":         {ActionID: "sms", Reason: MinGap, ClearsAt: last.Add(72 * time.Hour)},
		"email-later": {ActionID: "email-later", Reason: ContentExpired, ClearsAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		"email-promo": {ActionID: "email-promo", Reason: NoConsent},
	}
	if len(res.Suppressed) != len(want) {
		t.Errorf("suppressed %+v, want %d", res.Suppressed, len(want))
	}
	for _, s := range res.Suppressed {
		w, ok := want[s.ActionID]
		w.Index = s.Index
		if !ok || s != w {
			t.Errorf("suppressed %+v, want %+v", s, w)
		}
	}
}
