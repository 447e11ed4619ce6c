package decision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

// snapshots is an in-memory Loader: the pure core is tested with a fake
// store; the real store is tested against redis-server in redisstore/ and
// end to end in cmd/arbiter.
type snapshots struct {
	m   map[string]*recipient.State
	err error
}

func (s *snapshots) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	if s.err != nil {
		return nil, s.err
	}
	snap, ok := s.m[id]
	if !ok {
		return nil, fmt.Errorf("load: %w", arbiter.ErrNotFound)
	}
	return snap, nil
}

var now = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

const testCatalog = `{
  "version": "c1",
  "min_gap": {"sms": "72h"},
  "actions": [
    {"id": "email-ok", "channel": "email", "content_id": "EM-1", "topic": "efficacy", "purpose": "promotional", "audience": "hcp", "value": 1,
     "approval": {"status": "approved", "id": "MLR-1", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US", "EU"]}},
    {"id": "email-medical", "channel": "email", "content_id": "EM-2", "topic": "safety", "purpose": "medical", "audience": "hcp", "value": 1.5,
     "approval": {"status": "approved", "id": "MLR-2", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US", "EU"]}},
    {"id": "email-pending", "channel": "email", "content_id": "EM-3", "purpose": "promotional", "audience": "hcp", "value": 9,
     "approval": {"status": "pending"}},
    {"id": "email-expired", "channel": "email", "content_id": "EM-4", "purpose": "promotional", "audience": "hcp", "value": 9,
     "approval": {"status": "approved", "id": "MLR-4", "valid_from": "2025-01-01T00:00:00Z", "valid_until": "2026-11-20T09:00:00Z", "markets": ["US"]}},
    {"id": "email-eu-only", "channel": "email", "content_id": "EM-5", "purpose": "promotional", "audience": "hcp", "value": 9,
     "approval": {"status": "approved", "id": "MLR-5", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["EU"]}},
    {"id": "rep-visit", "channel": "rep_visit", "topic": "efficacy", "purpose": "promotional", "audience": "hcp", "value": 5, "specialties": ["cardiology"]},
    {"id": "rep-visit-onco", "channel": "rep_visit", "purpose": "promotional", "audience": "hcp", "value": 5, "specialties": ["oncology"]},
    {"id": "sms-reminder", "channel": "sms", "content_id": "SMS-1", "purpose": "service", "audience": "hcp", "value": 1,
     "approval": {"status": "approved", "id": "MLR-6", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US"]}},
    {"id": "patient-sms", "channel": "sms", "content_id": "SMS-2", "purpose": "service", "audience": "patient", "value": 1,
     "approval": {"status": "approved", "id": "MLR-7", "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z", "markets": ["US"]}}
  ]
}`

func usCardiologist() *recipient.State {
	s := &recipient.State{
		Profile: recipient.Profile{HCPID: "HCP-1", Specialty: "cardiology", Market: "US", Audience: arbiter.HCP,
			Segment: "digital_savvy"},
		Consent: consent.State{Complete: true, Records: []consent.Record{
			{Channel: arbiter.SMS, Purpose: arbiter.Service, Status: consent.OptIn, CapturedAt: now.AddDate(0, -1, 0), Source: "crm"},
		}},
	}
	s.Counters.Engagement[arbiter.Email] = 3
	s.Counters.Topics = map[string]float64{"efficacy": 2}
	return s
}

func newEngine(t *testing.T, snaps map[string]*recipient.State) *Engine {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(&snapshots{m: snaps}, scoring.Demo(), cat, consent.DefaultPolicy(), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func suppressedAs(res *Result) map[string]Reason {
	out := map[string]Reason{}
	for _, s := range res.Suppressed {
		out[s.ActionID] = s.Reason
	}
	return out
}

func recommended(res *Result) []string {
	var out []string
	for _, r := range res.Recommendations {
		out = append(out, r.Action.ID)
	}
	return out
}

func TestDecideSuppressesWithReasons(t *testing.T) {
	optedOut := usCardiologist()
	optedOut.Consent.Records = append(optedOut.Consent.Records, consent.Record{
		Channel: arbiter.Email, Purpose: arbiter.Promotional, Status: consent.OptOut, CapturedAt: now.AddDate(0, 0, -2), Source: "crm"})
	unknown := usCardiologist()
	unknown.Consent = consent.State{} // marker missing: never loaded
	recent := usCardiologist()
	recent.Counters.LastContact[arbiter.SMS] = now.Add(-24 * time.Hour)

	tests := []struct {
		name    string
		snap    *recipient.State
		req     Request
		wantRec []string // exact set, in rank order
		want    map[string]Reason
	}{
		{
			name:    "us cardiologist",
			snap:    usCardiologist(),
			req:     Request{Limit: 10},
			wantRec: []string{"rep-visit", "email-ok", "email-medical", "sms-reminder"},
			want: map[string]Reason{
				"email-pending": ContentNotApproved, "email-eu-only": ContentNotApproved,
				"email-expired": ContentExpired, "rep-visit-onco": NotEligible, "patient-sms": NotEligible,
			},
		},
		{
			name:    "opted out of promotional email",
			snap:    optedOut,
			req:     Request{Limit: 10},
			wantRec: []string{"rep-visit", "email-medical", "sms-reminder"},
			want:    map[string]Reason{"email-ok": NoConsent, "email-pending": ContentNotApproved},
		},
		{
			name: "consent never loaded denies everything",
			snap: unknown,
			req:  Request{Limit: 10},
			want: map[string]Reason{"email-ok": ConsentUnknown, "email-medical": ConsentUnknown,
				"rep-visit": ConsentUnknown, "sms-reminder": ConsentUnknown},
		},
		{
			name:    "channel restriction",
			snap:    usCardiologist(),
			req:     Request{Limit: 10, Channels: []arbiter.Channel{arbiter.SMS}},
			wantRec: []string{"sms-reminder"},
			want:    map[string]Reason{"email-ok": ChannelNotRequested, "rep-visit": ChannelNotRequested},
		},
		{
			name:    "catalog minimum gap",
			snap:    recent,
			req:     Request{Limit: 10, Candidates: []string{"sms-reminder", "email-ok"}},
			wantRec: []string{"email-ok"},
			want:    map[string]Reason{"sms-reminder": MinGap},
		},
		{
			name:    "limit",
			snap:    usCardiologist(),
			req:     Request{Limit: 1},
			wantRec: []string{"rep-visit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, map[string]*recipient.State{"HCP-1": tt.snap})
			tt.req.HCPID = "HCP-1"
			res, err := e.Decide(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got := recommended(res); strings.Join(got, ",") != strings.Join(tt.wantRec, ",") {
				t.Errorf("recommended %v, want %v", got, tt.wantRec)
			}
			got := suppressedAs(res)
			for id, want := range tt.want {
				// Without explain, candidates that do not apply to the HCP
				// are left out; what applies but is forbidden is always listed.
				if want == NotEligible || want == ChannelNotRequested {
					if r, listed := got[id]; listed {
						t.Errorf("%s listed as %v without explain, want it left out", id, r)
					}
					continue
				}
				if got[id] != want {
					t.Errorf("%s suppressed as %v, want %v", id, got[id], want)
				}
			}
			explained, err := e.Decide(context.Background(), Request{HCPID: tt.req.HCPID, Limit: tt.req.Limit,
				Candidates: tt.req.Candidates, Channels: tt.req.Channels, Explain: true})
			if err != nil {
				t.Fatal(err)
			}
			if a, b := recommended(explained), recommended(res); strings.Join(a, ",") != strings.Join(b, ",") {
				t.Errorf("explain changed the recommendations: %v vs %v", a, b)
			}
			all := suppressedAs(explained)
			for id, want := range tt.want {
				if all[id] != want {
					t.Errorf("with explain, %s suppressed as %v, want %v", id, all[id], want)
				}
			}
			for i, r := range res.Recommendations {
				if r.Rank != i+1 {
					t.Errorf("recommendation %d has rank %d", i, r.Rank)
				}
				if i > 0 && r.Score > res.Recommendations[i-1].Score {
					t.Errorf("recommendation %d scores %v, above the one before (%v)", i, r.Score, res.Recommendations[i-1].Score)
				}
				if _, dup := got[r.Action.ID]; dup {
					t.Errorf("%s is both recommended and suppressed", r.Action.ID)
				}
			}
		})
	}
}

func TestDecideExplains(t *testing.T) {
	e := newEngine(t, map[string]*recipient.State{"HCP-1": usCardiologist()})
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 3, Explain: true, Caller: arbiter.CallerRepTool})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recommendations) != 3 {
		t.Fatalf("got %d recommendations, want 3", len(res.Recommendations))
	}
	for _, r := range res.Recommendations {
		if len(r.Contributions) == 0 || len(r.Contributions) > 3 {
			t.Errorf("%s: %d contributions, want 1 to 3", r.Action.ID, len(r.Contributions))
		}
		if !strings.HasSuffix(r.Reason, ".") || len(r.Reason) < 20 {
			t.Errorf("%s: reason %q is not a sentence", r.Action.ID, r.Reason)
		}
	}
	if got := res.Recommendations[1].Reason; !strings.Contains(got, "they engage with email") {
		t.Errorf("email reason %q does not mention email engagement", got)
	}
	for _, s := range res.Suppressed {
		if s.Detail == "" {
			t.Errorf("%s suppressed (%v) without detail", s.ActionID, s.Reason)
		}
	}
	if res.ID == "" || res.ModelVersion == "" || res.CatalogVersion != "c1" || !res.At.Equal(now) {
		t.Errorf("result header = %q %q %q %v", res.ID, res.ModelVersion, res.CatalogVersion, res.At)
	}
	// Without explain: no details, no contributions.
	res, err = e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Recommendations[0]; r.Reason != "" || r.Contributions != nil || res.Suppressed[0].Detail != "" {
		t.Errorf("explanations returned without explain: %+v", r)
	}
}

func TestDecideErrors(t *testing.T) {
	e := newEngine(t, map[string]*recipient.State{"HCP-1": usCardiologist()})
	ctx := context.Background()
	_, err := e.Decide(ctx, Request{HCPID: "HCP-1", Limit: 3, Candidates: []string{"email-ok", "nope", "email-ok"}})
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want InvalidError", err)
	}
	if len(inv.Violations) != 2 || inv.Violations[0].Field != "candidates[1]" || inv.Violations[1].Field != "candidates[2]" {
		t.Errorf("violations = %+v, want candidates[1] unknown and candidates[2] duplicate", inv.Violations)
	}
	if _, err := e.Decide(ctx, Request{HCPID: "HCP-404", Limit: 3}); !errors.Is(err, arbiter.ErrNotFound) {
		t.Errorf("unknown HCP: err = %v, want ErrNotFound", err)
	}
	e.loader = &snapshots{err: fmt.Errorf("features: load: %w", arbiter.ErrUnavailable)}
	res, err := e.Decide(ctx, Request{HCPID: "HCP-1", Limit: 3})
	if !errors.Is(err, arbiter.ErrUnavailable) || res != nil {
		t.Errorf("store down: got %v, %v; want no result and ErrUnavailable", res, err)
	}
}

// TestNoRecommendationWithoutConsentOrApproval decides for a thousand demo
// HCPs over the demo catalog at several times and checks every
// recommendation independently against the consent rules and MLR approval.
func TestNoRecommendationWithoutConsentOrApproval(t *testing.T) {
	cat, policy := catalog.Demo(), consent.DefaultPolicy()
	snaps := map[string]*recipient.State{}
	var ids []string
	for i := 1; i <= 1000; i++ {
		item := demo.HCP(i, now)
		snap := &recipient.State{Profile: item.Profile, Counters: *item.Counters,
			Consent: consent.State{Complete: item.ConsentComplete, Records: item.Consent}}
		snaps[item.Profile.HCPID] = snap
		ids = append(ids, item.Profile.HCPID)
	}
	e, err := New(&snapshots{m: snaps}, scoring.Demo(), cat, policy)
	if err != nil {
		t.Fatal(err)
	}
	recs, sups := 0, 0
	for _, at := range []time.Time{now, now.AddDate(0, 6, 0), now.AddDate(2, 0, 0)} {
		for _, id := range ids {
			res, err := e.Decide(context.Background(), Request{HCPID: id, Limit: 5, At: at})
			if err != nil {
				t.Fatal(err)
			}
			snap := snaps[id]
			for _, r := range res.Recommendations {
				a := r.Action
				q := consent.Query{Channel: a.Channel, Purpose: a.Purpose, Topic: a.Topic,
					Address: snap.Profile.Addresses[a.Channel], Market: snap.Profile.Market, At: at}
				if v := policy.Evaluate(&snap.Consent, q); !v.Allowed() {
					t.Fatalf("%s: %s recommended at %v without consent (%v)", id, a.ID, at, v.Outcome)
				}
				if a.ContentID != "" {
					ap := a.Approval
					if ap.Status != catalog.ApprovalApproved || at.Before(ap.ValidFrom) || !at.Before(ap.ValidUntil) {
						t.Fatalf("%s: %s recommended at %v without valid MLR approval", id, a.ID, at)
					}
				}
			}
			recs += len(res.Recommendations)
			sups += len(res.Suppressed)
		}
	}
	if recs == 0 || sups == 0 {
		t.Fatalf("checked %d recommendations and %d suppressions; the test data exercises nothing", recs, sups)
	}
}

// BenchmarkDecide decides for a demo HCP (with its four weeks of
// touches), without a contact policy and with the demo's.
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		n             int
		policy, rules bool
	}{{50, false, false}, {77, false, false}, {77, true, false}, {77, true, true}} {
		name := fmt.Sprint("candidates=", bc.n)
		if bc.policy {
			name += "/contact-policy"
		}
		if bc.rules {
			name += "/rules"
		}
		n := bc.n
		b.Run(name, func(b *testing.B) {
			item := demo.HCP(42, now)
			snap := &recipient.State{Profile: item.Profile, Counters: *item.Counters,
				Consent: consent.State{Complete: true, Records: item.Consent}, Touches: contact.Ledger{Touches: item.Touches}}
			cat := catalog.Demo()
			var opts []Option
			if bc.policy {
				pol, err := contact.Parse(contact.DemoJSON())
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, WithContactPolicy(pol), WithClock(func() time.Time { return now }))
			}
			if bc.rules {
				rs, err := rules.Parse(rules.DemoJSON(), cat)
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, WithRules(rs))
				snap.Recent = []recipient.RecentEvent{
					{At: now.Add(-2 * time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "email-glucanor-safety"},
					{At: now.Add(-30 * time.Hour), Type: arbiter.EventClicked, Channel: arbiter.Email, ActionID: "email-glucanor-efficacy"},
					{At: now.Add(-50 * time.Hour), Type: arbiter.EventAttended, Channel: arbiter.Webinar},
				}
			}
			e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-000042": snap}}, scoring.Demo(), cat, consent.DefaultPolicy(), opts...)
			if err != nil {
				b.Fatal(err)
			}
			var cands []string
			for _, a := range cat.Actions[:n] {
				cands = append(cands, a.ID)
			}
			req := Request{HCPID: "HCP-000042", Limit: 3, Candidates: cands, At: now}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A decision over the whole catalog uses a shared, read-only list of every
// action: decisions naming candidates in between must not overwrite it.
func TestWholeCatalogAfterNamedCandidates(t *testing.T) {
	e := newEngine(t, map[string]*recipient.State{"HCP-1": usCardiologist()})
	ctx := context.Background()
	accounted := func() int {
		res, err := e.Decide(ctx, Request{HCPID: "HCP-1", Limit: 50, Explain: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Recommendations) + len(res.Suppressed)
	}
	want := len(e.Catalog().Actions)
	if got := accounted(); got != want {
		t.Fatalf("whole-catalog decision accounts for %d actions, want %d", got, want)
	}
	for range 3 {
		if _, err := e.Decide(ctx, Request{HCPID: "HCP-1", Limit: 3, Candidates: []string{"sms-reminder", "email-ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := accounted(); got != want {
		t.Errorf("after named-candidate decisions, a whole-catalog decision accounts for %d actions, want %d", got, want)
	}
	for i, ai := range e.allActions {
		if ai != int32(i) {
			t.Fatalf("allActions[%d] = %d: overwritten", i, ai)
		}
	}
}
