package server

import (
	"context"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	_ "github.com/arbiter-nba/arbiter/celrules"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/recipient"
)

type fixedStates map[string]*recipient.State

func (s fixedStates) Load(_ context.Context, id string, _ time.Time) (*recipient.State, error) {
	if st, ok := s[id]; ok {
		return st, nil
	}
	return nil, arbiter.ErrNotFound
}

// demoStates is the demo population's first n recipients as decisions
// load them, with a few recent events each.
func demoStates(n int, now time.Time) fixedStates {
	out := fixedStates{}
	for i := 1; i <= n; i++ {
		item := demo.HCP(i, now)
		st := &recipient.State{Profile: item.Profile, Counters: *item.Counters}
		st.Profile.Attributes = maps.Clone(item.Profile.Attributes)
		st.Consent = consent.State{Complete: item.ConsentComplete, Records: item.Consent, Version: int64(len(item.Consent))}
		st.Touches.Touches = item.Touches
		for _, e := range demo.JourneyEvents(i, now) {
			st.Recent = append(st.Recent, recipient.RecentEvent{At: e.OccurredAt, Type: e.Type, Channel: e.Channel,
				ActionID: e.ActionID, Topic: e.Topic, Purpose: e.Purpose})
		}
		out[item.Profile.HCPID] = st
	}
	return out
}

func demoEngine(t testing.TB, loader decision.Loader, now time.Time) *decision.Engine {
	t.Helper()
	set := definitions.Demo()
	e, err := decision.New(loader, set.Model, set.Catalog, set.Policy, decision.WithDefinitionsVersion(set.Version),
		decision.WithContactPolicy(set.Contact), decision.WithRules(set.Rules), decision.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A receipt's stored form gives back, for a replay, exactly what the
// decision was made from: the replay of every demo recipient's decision,
// from the decoded receipt, is the logged answer to the bit.
func TestReceiptRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	states := demoStates(300, now)
	e := demoEngine(t, states, now)
	e.SetPausedJourneys(map[string]bool{"glucanor-launch": true})
	ctx := context.Background()
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 5, Explain: len(id)%2 == 0}
		res, err := e.Decide(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := EncodeReceipt(&decision.Receipt{Kind: decision.KindDecide, Principal: "svc-crm", Request: req, Result: res})
		if err != nil {
			t.Fatal(err)
		}
		p, err := DecodeReceipt(data, func(string) *catalog.Catalog { return e.Catalog() })
		if err != nil {
			t.Fatal(err)
		}
		rc, err := receiptOf(p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := e.Replay(ctx, rc)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffDecided(p.GetDecided(), decideResponse(got)); len(d) > 0 {
			t.Fatalf("%s: the replay from the stored receipt differs: %v", id, d)
		}
		if !proto.Equal(p.GetDecided(), decideResponse(got)) {
			t.Fatalf("%s: the replay is not the logged answer", id)
		}
	}
}

// BenchmarkEncodeReceipt is what the asynchronous log costs the server per
// decision: converting the receipt and marshalling it (the answer is
// converted once, for the caller, and reused).
func BenchmarkEncodeReceipt(b *testing.B) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	states := demoStates(20, now)
	e := demoEngine(b, states, now)
	ctx := context.Background()
	var ps []pendingReceipt
	for id := range states {
		req := decision.Request{HCPID: id, Limit: 3}
		res, err := e.Decide(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		ps = append(ps, pendingReceipt{rc: &decision.Receipt{Kind: decision.KindDecide, Request: req, Result: res}, decided: decideResponse(res)})
	}
	var size int
	for i := 0; b.Loop(); i++ {
		sr, err := stored(ps[i%len(ps)])
		if err != nil {
			b.Fatal(err)
		}
		size += len(sr.Data)
	}
	b.ReportMetric(float64(size)/float64(b.N), "bytes/receipt")
}
