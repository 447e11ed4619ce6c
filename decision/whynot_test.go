package decision_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
)

// WhyNot's answer (every gate, CheckAll) agrees with the decision's own:
// for every candidate a decision suppressed, the first block CheckAll
// finds is the decision's, with the same clears_at; and clears_at is
// right: at that time, that block no longer holds. Over the demo
// population (HCPs and patients) with the demo's contact policy (caps,
// gaps, quiet hours), rules and journeys, at times spread over a week.
func TestWhyNotAgreesWithDecisions(t *testing.T) {
	defs := definitions.Demo()
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	pop := states{}
	var ids []string
	for i := 1; i <= 250; i++ {
		st := stateOf(demo.HCP(i, base))
		pop[st.Profile.HCPID] = st
		ids = append(ids, st.Profile.HCPID)
	}
	for i := 1; i <= 250; i++ {
		item := demo.Patient(i, base)
		st := stateOf(item)
		pop[st.Profile.HCPID] = st
		ids = append(ids, st.Profile.HCPID)
	}
	decisions := 10_000
	if testing.Short() {
		decisions = 1_000
	}
	var now time.Time
	e, err := decision.New(pop, defs.Model, defs.Catalog, defs.Policy, decision.WithClock(func() time.Time { return now }),
		decision.WithContactPolicy(defs.Contact), decision.WithRules(defs.Rules))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var suppressed, cleared int
	for n := 0; n < decisions; n++ {
		id := ids[n%len(ids)]
		// A time in the week, at 37-minute steps: every hour of the day,
		// in and out of every zone's quiet hours.
		now = base.Add(time.Duration(n/len(ids))*7*time.Hour + time.Duration(n%len(ids))*37*time.Minute)
		res, err := e.Decide(ctx, decision.Request{HCPID: id, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Suppressed {
			suppressed++
			checks, err := e.CheckAll(ctx, decision.Request{HCPID: id, Candidates: []string{s.ActionID}, At: res.At})
			if err != nil {
				t.Fatal(err)
			}
			if len(checks) != 1 || len(checks[0].Blocks) == 0 {
				t.Fatalf("%s at %v: %s suppressed (%s) but WhyNot finds no block", id, now, s.ActionID, s.Reason)
			}
			first := checks[0].Blocks[0]
			if first.Reason != s.Reason || !first.ClearsAt.Equal(s.ClearsAt) {
				t.Fatalf("%s at %v: %s suppressed %s clearing %v; WhyNot's first block %s clearing %v", id, now, s.ActionID,
					s.Reason, s.ClearsAt, first.Reason, first.ClearsAt)
			}
			if s.ClearsAt.IsZero() {
				continue
			}
			later, err := e.CheckAll(ctx, decision.Request{HCPID: id, Candidates: []string{s.ActionID}, At: s.ClearsAt})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range later[0].Blocks {
				if b.Reason == s.Reason {
					t.Fatalf("%s: %s blocked %s until %v (at %v), and at that time still %s until %v: %s", id, s.ActionID,
						s.Reason, s.ClearsAt, now, b.Reason, b.ClearsAt, b.Detail)
				}
			}
			cleared++
		}
	}
	if suppressed < decisions || cleared < decisions/20 {
		t.Fatalf("%d suppressions checked, %d with a clear time: too few for the test to mean something", suppressed, cleared)
	}
	t.Logf("%d decisions: %d suppressions agree with WhyNot, %d clear when they say", decisions, suppressed, cleared)
}
