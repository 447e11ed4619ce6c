package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/definitions"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// An MSL meets a cardiologist: for a day, no promotional email on other
// topics, said with the rule's words and when it clears; the meeting's own
// topic stays open. The demo rules, end to end, on a real Redis.
func TestRulesMSLMeetingSuppressesPromotionalEmail(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json")
	c := ts.client
	ctx := context.Background()
	addRecipient(t, c, "RULES-MSL-1", "America/New_York", arbiter.HCP)
	met := ms(time.Now().Add(-2 * time.Hour))
	recordTouch(t, c, client.Event{ID: "rules-msl-1", HCPID: "RULES-MSL-1", Type: arbiter.EventMSLMeeting,
		Channel: arbiter.MSLMeeting, Topic: "cardiolex_efficacy", OccurredAt: met})
	d, err := c.Decide(ctx, "RULES-MSL-1", client.DecideOptions{Limit: 10, Explain: true,
		Candidates: []string{"email-cardiolex-dosing", "email-cardiolex-efficacy"}})
	if err != nil {
		t.Fatal(err)
	}
	var sup *client.Suppression
	for i := range d.Suppressed {
		if d.Suppressed[i].ActionID == "email-cardiolex-dosing" {
			sup = &d.Suppressed[i]
		}
	}
	if sup == nil || sup.Reason != client.SuppressionRule {
		t.Fatalf("email on another topic after an MSL meeting: suppressed %+v, want RULE", sup)
	}
	if !strings.Contains(sup.Detail, "msl-met-no-promo-email") || !strings.Contains(sup.Detail, "MSL") {
		t.Errorf("detail %q does not name the rule and say why", sup.Detail)
	}
	if want := met.Add(24 * time.Hour); !sup.ClearsAt.Equal(want) {
		t.Errorf("clears at %v, want the meeting + 24h (%v)", sup.ClearsAt, want)
	}
	for _, s := range d.Suppressed {
		if s.ActionID == "email-cardiolex-efficacy" && s.Reason == client.SuppressionRule {
			t.Errorf("the meeting's own topic is suppressed by a rule: %+v", s)
		}
	}
}

// A clicked efficacy email boosts the next efficacy content on its topic,
// and the recommendation names the rule.
func TestRulesBoostNamedInRecommendation(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json")
	c := ts.client
	ctx := context.Background()
	addRecipient(t, c, "RULES-CLICK-1", "America/New_York", arbiter.HCP, optIn(arbiter.Webinar, arbiter.Promotional))
	opts := client.DecideOptions{Limit: 1, Explain: true, Candidates: []string{"webinar-cardiolex-efficacy"}}
	before, err := c.Decide(ctx, "RULES-CLICK-1", opts)
	if err != nil || len(before.Recommendations) != 1 {
		t.Fatalf("before the click: %+v, %v; want the webinar recommended", before, err)
	}
	recordTouch(t, c, client.Event{ID: "rules-click-1", HCPID: "RULES-CLICK-1", Type: arbiter.EventClicked,
		Channel: arbiter.Email, ActionID: "email-cardiolex-efficacy", OccurredAt: time.Now().Add(-time.Hour)})
	after, err := c.Decide(ctx, "RULES-CLICK-1", opts)
	if err != nil || len(after.Recommendations) != 1 {
		t.Fatalf("after the click: %+v, %v", after, err)
	}
	r := after.Recommendations[0]
	if len(r.Rules) != 1 || r.Rules[0] != "efficacy-clicked-go-deeper" {
		t.Errorf("rules %v, want efficacy-clicked-go-deeper", r.Rules)
	}
	if !strings.Contains(r.Reason, "builds on that interest") {
		t.Errorf("reason %q does not say why the rule boosted it", r.Reason)
	}
	if r.ContextWeight <= before.Recommendations[0].ContextWeight*1.4 {
		t.Errorf("context weight %v after the click, %v before: want it boosted by 1.5", r.ContextWeight, before.Recommendations[0].ContextWeight)
	}
}

// A rule set that does not compile, or breaks the medical/commercial
// firewall, is refused at publish, naming the rule; decisions go on with
// the set in use.
func TestRulesPublishRefusesBrokenRules(t *testing.T) {
	ts := start(t, embedded, 5, "-admin-rpc", "-definitions-poll", "50ms", "-rules", "../../rules/demo_rules.json")
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()
	defs := nbapb.NewDefinitionsServiceClient(conn)
	active, err := defs.GetActiveDefinitions(ctx, &nbapb.GetActiveDefinitionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ rules, want string }{
		"syntax": {`{"rules": [{"id": "broken", "description": "d", "when": "events.exists(e,", "select": {}, "effect": "demote", "factor": 0.5}]}`, "broken"},
		"firewall": {`{"rules": [{"id": "msl-to-promo", "description": "d", "when": "medical_events.size() > 0",
			"select": {"purposes": ["promotional"]}, "effect": "boost", "factor": 2}]}`, "firewall"},
	} {
		files := active.GetFiles()
		files[definitions.RulesFile] = []byte(tt.rules)
		_, err := defs.PublishDefinitions(ctx, &nbapb.PublishDefinitionsRequest{Files: files})
		if v := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || !strings.Contains(v["files"], tt.want) {
			t.Errorf("%s: %v, violations %v; want InvalidArgument mentioning %q", name, err, v, tt.want)
		}
	}
	d, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{})
	if err != nil || d.DefinitionsVersion != active.GetVersion() {
		t.Errorf("decision after the refused publishes: %v, %v; want one on the set in use", d, err)
	}
}

// The decision names the recipient's persona, and it follows behaviour.
func TestRulesPersonaFollowsBehaviour(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json")
	c := ts.client
	ctx := context.Background()
	addRecipient(t, c, "RULES-PERSONA-1", "America/New_York", arbiter.HCP)
	d, err := c.Decide(ctx, "RULES-PERSONA-1", client.DecideOptions{})
	if err != nil || d.Persona != "low_engagement" {
		t.Fatalf("a new recipient: persona %q, %v; want low_engagement", d.Persona, err)
	}
	for i := range 3 {
		recordTouch(t, c, client.Event{ID: fmt.Sprint("persona-attended-", i), HCPID: "RULES-PERSONA-1", Type: arbiter.EventAttended,
			Channel: arbiter.Webinar, OccurredAt: time.Now().Add(-time.Duration(i+1) * time.Hour)})
	}
	d, err = c.Decide(ctx, "RULES-PERSONA-1", client.DecideOptions{})
	if err != nil || d.Persona != "scientific_first" {
		t.Errorf("after three webinars attended: persona %q, %v; want scientific_first", d.Persona, err)
	}
}
