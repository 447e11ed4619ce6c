package decision

import (
	"context"
	"slices"
	"strings"
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

// A pre-send check evaluates only the rules that can change its answer
// (rules.Input.Send): boosts and demotions never, suppressions only where
// their selector may select the action. Its blocks must be those of a
// check that evaluates every rule (CheckAll), for every action of the
// catalog, a failing suppression (fail closed) and a requirement included.
func TestCheckSendEvaluatesOnlyRulesThatMatter(t *testing.T) {
	st := usCardiologist()
	e := rulesEngine(t, st, `{"rules": [
		{"id": "no-email", "description": "no email now", "when": "true", "select": {"channels": ["email"]}, "effect": "suppress", "for": "24h"},
		{"id": "no-promo-broken", "description": "fails: a key the map never holds",
			"when": "engagement['nope'] > 0.0", "select": {"purposes": ["promotional"], "channels": ["rep_visit"]}, "effect": "suppress", "for": "24h"},
		{"id": "boost-webinar", "description": "webinars first", "when": "true", "select": {"channels": ["webinar"]}, "effect": "boost", "factor": 3},
		{"id": "demote-sms", "description": "less sms", "when": "true", "select": {"channels": ["sms"]}, "effect": "demote", "factor": 0.5},
		{"id": "no-sms-now", "description": "everything but sms", "when": "true",
			"select": {"channels": ["email", "rep_visit", "webinar", "push", "msl_meeting", "in_app", "portal"]}, "effect": "require"}
	]}`)
	ctx := context.Background()
	checks, err := e.CheckAll(ctx, Request{HCPID: "HCP-1", Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) < 5 {
		t.Fatalf("CheckAll checked %d actions, want the catalog's", len(checks))
	}
	blocked, required := 0, 0
	for _, c := range checks {
		res, err := e.CheckSend(ctx, SendRequest{HCPID: "HCP-1", ActionID: c.ActionID})
		if err != nil {
			t.Fatalf("%s: %v", c.ActionID, err)
		}
		if got, want := reasons(res.Blocks), reasons(c.Blocks); !slices.Equal(got, want) {
			t.Errorf("%s: CheckSend blocks %v, every rule evaluated gives %v", c.ActionID, got, want)
			continue
		}
		for i := range res.Blocks {
			if g, w := res.Blocks[i], c.Blocks[i]; g.Detail != w.Detail || !g.ClearsAt.Equal(w.ClearsAt) {
				t.Errorf("%s: block %d %+v, every rule evaluated gives %+v", c.ActionID, i, g, w)
			}
		}
		for _, b := range res.Blocks {
			if b.Reason == RuleBlock {
				blocked++
				if strings.Contains(b.Detail, "no-sms-now") {
					required++
				}
			}
		}
	}
	if blocked == 0 || required == 0 {
		t.Errorf("%d actions held back by a rule, %d by the requirement: the test checks too little", blocked, required)
	}
}
