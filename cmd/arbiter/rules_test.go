package main

import (
	"context"
	"fmt"
	"slices"
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
	ctx := context.Background()
	defs, active := activeDefinitions(t, ts)
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

// Each shipped rule of the demo, end to end: what happened, as events
// through the client, and the decision that follows, with the rule named.
func TestRulesShippedScenarios(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json")
	c := ts.client
	ctx := context.Background()
	now := time.Now()
	allOptIns := []client.ConsentRecord{}
	for _, ch := range []arbiter.Channel{arbiter.Email, arbiter.Portal, arbiter.Webinar, arbiter.MSLMeeting, arbiter.RepVisit} {
		for _, pu := range []arbiter.Purpose{arbiter.Promotional, arbiter.Medical, arbiter.Service} {
			allOptIns = append(allOptIns, optIn(ch, pu))
		}
	}
	decide := func(t *testing.T, id string, candidates ...string) *client.Decision {
		t.Helper()
		d, err := c.Decide(ctx, id, client.DecideOptions{Limit: 10, Explain: true, Candidates: candidates})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	rec := func(d *client.Decision, action string) *client.Recommendation {
		for i := range d.Recommendations {
			if d.Recommendations[i].ActionID == action {
				return &d.Recommendations[i]
			}
		}
		return nil
	}
	named := func(r *client.Recommendation, rule string) bool { return r != nil && slices.Contains(r.Rules, rule) }

	t.Run("a safety email opened: the medical Q&A first", func(t *testing.T) {
		id := "RULES-SAFETY"
		addRecipient(t, c, id, "America/New_York", arbiter.HCP, allOptIns...)
		recordTouch(t, c, client.Event{ID: id + "-opened", HCPID: id, Type: arbiter.EventOpened, Channel: arbiter.Email,
			ActionID: "email-cardiolex-safety", OccurredAt: now.Add(-2 * time.Hour)})
		d := decide(t, id, "portal-cardiolex-medical_qa", "portal-glucanor-medical_qa")
		if r := rec(d, "portal-cardiolex-medical_qa"); !named(r, "safety-opened-medical-qa") || !strings.Contains(r.Reason, "medical Q&A") {
			t.Errorf("the cardiolex Q&A: %+v, want it boosted by safety-opened-medical-qa", r)
		}
		if r := rec(d, "portal-glucanor-medical_qa"); r != nil && len(r.Rules) > 0 {
			t.Errorf("the Q&A of another product: rules %v, want none", r.Rules)
		}
	})

	t.Run("efficacy clicked: deeper content up, awareness down", func(t *testing.T) {
		id := "RULES-EFFICACY"
		addRecipient(t, c, id, "America/New_York", arbiter.HCP, allOptIns...)
		recordTouch(t, c, client.Event{ID: id + "-clicked", HCPID: id, Type: arbiter.EventClicked, Channel: arbiter.Email,
			ActionID: "email-cardiolex-efficacy", OccurredAt: now.Add(-3 * time.Hour)})
		d := decide(t, id, "portal-cardiolex-video", "webinar-cardiolex-efficacy")
		if r := rec(d, "portal-cardiolex-video"); !named(r, "efficacy-clicked-less-awareness") {
			t.Errorf("awareness video on the topic: %+v, want it demoted by efficacy-clicked-less-awareness", r)
		}
		if r := rec(d, "webinar-cardiolex-efficacy"); !named(r, "efficacy-clicked-go-deeper") {
			t.Errorf("efficacy webinar on the topic: %+v, want it boosted by efficacy-clicked-go-deeper", r)
		}
	})

	t.Run("a skipped webinar: no webinars for two weeks, a short video instead", func(t *testing.T) {
		id := "RULES-NOSHOW"
		addRecipient(t, c, id, "America/New_York", arbiter.HCP, allOptIns...)
		noShow := ms(now.Add(-time.Hour))
		recordTouch(t, c, client.Event{ID: id + "-noshow", HCPID: id, Type: arbiter.EventNoShow, Channel: arbiter.Webinar,
			ActionID: "webinar-cardiolex-efficacy", OccurredAt: noShow})
		d := decide(t, id, "webinar-cardiolex-efficacy", "portal-cardiolex-video")
		var sup *client.Suppression
		for i := range d.Suppressed {
			if d.Suppressed[i].ActionID == "webinar-cardiolex-efficacy" {
				sup = &d.Suppressed[i]
			}
		}
		if sup == nil || sup.Reason != client.SuppressionRule || !sup.ClearsAt.Equal(noShow.Add(336*time.Hour)) {
			t.Errorf("a promotional webinar after the no-show: %+v, want RULE until the no-show + 14 days", sup)
		}
		if r := rec(d, "portal-cardiolex-video"); !named(r, "webinar-skipped-short-video") {
			t.Errorf("the short video: %+v, want it boosted by webinar-skipped-short-video", r)
		}
	})

	t.Run("three promotional emails ignored: fewer of them, the preference centre", func(t *testing.T) {
		id := "RULES-IGNORED"
		addRecipient(t, c, id, "America/New_York", arbiter.HCP, allOptIns...)
		for i := range 3 {
			recordTouch(t, c, client.Event{ID: fmt.Sprint(id, "-sent-", i), HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Email,
				ActionID: "email-cardiolex-dosing", Purpose: arbiter.Promotional, MessageID: fmt.Sprint(id, "-msg-", i),
				OccurredAt: now.Add(-time.Duration(3+5*i) * 24 * time.Hour)})
		}
		d := decide(t, id, "email-cardiolex-efficacy", "email-preference-centre")
		if r := rec(d, "email-cardiolex-efficacy"); !named(r, "ignored-promo-email-demote") {
			t.Errorf("another promotional email: %+v (suppressed %+v), want it demoted by ignored-promo-email-demote", r, d.Suppressed)
		}
		if r := rec(d, "email-preference-centre"); !named(r, "ignored-promo-email-preferences") {
			t.Errorf("the preference centre: %+v, want it boosted by ignored-promo-email-preferences", r)
		}
	})

	t.Run("medical content engaged: gated data through the MSL, not the rep", func(t *testing.T) {
		id := "RULES-MSL-DATA"
		addRecipient(t, c, id, "America/New_York", arbiter.HCP, allOptIns...)
		recordTouch(t, c, client.Event{ID: id + "-opened", HCPID: id, Type: arbiter.EventOpened, Channel: arbiter.Email,
			ActionID: "email-cardiolex-trial_summary", OccurredAt: now.Add(-5 * time.Hour)})
		d := decide(t, id, "msl_meeting-cardiolex", "rep_visit-cardiolex")
		if r := rec(d, "msl_meeting-cardiolex"); !named(r, "medical-engaged-msl-gated-data") {
			t.Errorf("the MSL meeting: %+v, want it boosted by medical-engaged-msl-gated-data", r)
		}
		if r := rec(d, "rep_visit-cardiolex"); r != nil && len(r.Rules) > 0 {
			t.Errorf("the rep visit after medical engagement: rules %v, want none (the firewall)", r.Rules)
		}
	})
}

// Publishing a changed rule takes effect on the next decision.
func TestRulesPublishTakesEffectOnTheNextDecision(t *testing.T) {
	ts := start(t, embedded, 5, "-admin-rpc", "-definitions-poll", "50ms", "-rules", "../../rules/demo_rules.json")
	ctx := context.Background()
	defs, active := activeDefinitions(t, ts)
	files := active.GetFiles()
	files[definitions.RulesFile] = []byte(`{"rules": [{"id": "email-only", "description": "only email this week",
		"when": "true", "select": {"channels": ["email"]}, "effect": "require"}]}`)
	pub, err := defs.PublishDefinitions(ctx, &nbapb.PublishDefinitionsRequest{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{Limit: 10})
	if err != nil || d.DefinitionsVersion != pub.GetVersion() {
		t.Fatalf("the next decision: %+v, %v; want one on the published set", d, err)
	}
	for _, r := range d.Recommendations {
		if r.Channel != arbiter.Email {
			t.Errorf("%s (%s) recommended under a rule that requires email", r.ActionID, r.Channel)
		}
	}
}

// activeDefinitions returns a DefinitionsService client of ts and its
// active set.
func activeDefinitions(t *testing.T, ts *testServer) (nbapb.DefinitionsServiceClient, *nbapb.GetActiveDefinitionsResponse) {
	t.Helper()
	conn, err := grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	defs := nbapb.NewDefinitionsServiceClient(conn)
	active, err := defs.GetActiveDefinitions(context.Background(), &nbapb.GetActiveDefinitionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return defs, active
}
