package decision

import (
	"context"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
	"github.com/arbiter-nba/arbiter/scoring"
)

func rulesEngine(t *testing.T, st *recipient.State, src string) *Engine {
	t.Helper()
	cat, err := catalog.Parse([]byte(testCatalog))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse([]byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(&snapshots{m: map[string]*recipient.State{"HCP-1": st}}, scoring.Demo(), cat, consent.DefaultPolicy(),
		WithClock(func() time.Time { return now }), WithRules(rs))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// require: only what the selector matches applies; the rest is held back
// with reason RULE and the rule's id.
func TestRuleRequire(t *testing.T) {
	e := rulesEngine(t, usCardiologist(), `{"rules": [{"id": "email-only", "description": "only email now",
		"when": "true", "select": {"channels": ["email"]}, "effect": "require"}]}`)
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 10, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Recommendations {
		if r.Action.Channel != arbiter.Email {
			t.Errorf("%s recommended under a rule requiring email", r.Action.ID)
		}
	}
	if got := suppressedAs(res)["rep-visit"]; got != RuleBlock {
		t.Errorf("rep-visit under a rule requiring email: %q, want %q", got, RuleBlock)
	}
}

// A boost moves the score, never past a gate: a boosted candidate without
// consent is still held back, for consent.
func TestRuleBoostNeverPassesAGate(t *testing.T) {
	st := usCardiologist()
	st.Consent.Records = append(st.Consent.Records, consent.Record{Channel: arbiter.Email, Purpose: arbiter.Promotional,
		Status: consent.OptOut, CapturedAt: now.Add(-time.Hour), Source: "crm"})
	e := rulesEngine(t, st, `{"rules": [{"id": "boost-email", "description": "email first",
		"when": "true", "select": {"channels": ["email"]}, "effect": "boost", "factor": 10}]}`)
	res, err := e.Decide(context.Background(), Request{HCPID: "HCP-1", Limit: 10, Candidates: []string{"email-ok", "rep-visit"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := suppressedAs(res)["email-ok"]; got != NoConsent {
		t.Errorf("boosted email-ok after an opt-out: %q, want %q", got, NoConsent)
	}
	if len(res.Recommendations) != 1 || res.Recommendations[0].Action.ID != "rep-visit" || len(res.Recommendations[0].Rules) != 0 {
		t.Errorf("recommendations %+v, want rep-visit alone, unboosted", res.Recommendations)
	}
}
