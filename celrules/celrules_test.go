package celrules_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	_ "github.com/arbiter-nba/arbiter/celrules"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

var (
	now = time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	cat = catalog.Demo()
)

func demo(t *testing.T) *rules.Set {
	t.Helper()
	s, err := rules.Parse(rules.DemoJSON(), cat)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func action(t *testing.T, id string) *catalog.Action {
	t.Helper()
	i, ok := cat.Lookup(id)
	if !ok {
		t.Fatalf("no action %s in the demo catalog", id)
	}
	return &cat.Actions[i]
}

// applied evaluates s for st and returns the rules that hold, by id.
func applied(s *rules.Set, st *recipient.State) map[string]rules.Applied {
	out := map[string]rules.Applied{}
	for _, ap := range s.Evaluate(&rules.Input{State: st, Catalog: cat, At: now, Now: now}, nil) {
		out[ap.Rule.ID] = ap
	}
	return out
}

func cardiologist() *recipient.State {
	return &recipient.State{Profile: recipient.Profile{HCPID: "HCP-1", Specialty: "cardiology", Market: "US", Audience: arbiter.HCP}}
}

func TestDemoRulesParse(t *testing.T) {
	s := demo(t)
	if len(s.Rules) != 11 {
		t.Errorf("%d demo rules, want 11", len(s.Rules))
	}
	if got := applied(s, cardiologist()); len(got) != 0 {
		t.Errorf("rules hold for a recipient with no history: %v", got)
	}
}

// The seed's examples, each a scenario.
func TestMSLMeetingSuppressesOtherPromotionalEmail(t *testing.T) {
	st := cardiologist()
	met := now.Add(-3 * time.Hour)
	st.Recent = []recipient.RecentEvent{{At: met, Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting, Topic: "cardiolex_efficacy"}}
	ap, ok := applied(demo(t), st)["msl-met-no-promo-email"]
	if !ok {
		t.Fatal("an MSL meeting 3 hours ago: the rule does not hold")
	}
	if want := met.Add(24 * time.Hour); !ap.ClearsAt.Equal(want) {
		t.Errorf("clears at %v, want the meeting + 24h (%v)", ap.ClearsAt, want)
	}
	if !ap.Matches(action(t, "email-cardiolex-dosing")) {
		t.Error("promotional email on another topic is not suppressed")
	}
	if ap.Matches(action(t, "email-cardiolex-efficacy")) {
		t.Error("promotional email on the meeting's topic is suppressed")
	}
	if ap.Matches(action(t, "portal-cardiolex-safety")) {
		t.Error("a portal action is suppressed: the rule is about email")
	}
	// A day and a half later it no longer holds.
	st.Recent[0].At = now.Add(-36 * time.Hour)
	if _, ok := applied(demo(t), st)["msl-met-no-promo-email"]; ok {
		t.Error("an MSL meeting 36 hours ago still suppresses")
	}
}

func TestSafetyOpenedBoostsMedicalQA(t *testing.T) {
	st := cardiologist()
	st.Recent = []recipient.RecentEvent{{At: now.Add(-48 * time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email,
		ActionID: "email-cardiolex-safety", Topic: "cardiolex_safety"}}
	ap, ok := applied(demo(t), st)["safety-opened-medical-qa"]
	if !ok {
		t.Fatal("a safety email opened two days ago: the rule does not hold")
	}
	if !ap.Matches(action(t, "portal-cardiolex-medical_qa")) || ap.Matches(action(t, "portal-oncovia-medical_qa")) {
		t.Errorf("boosts %v: want the product's medical Q&A only", ap.TopicsIn)
	}
}

func TestEfficacyClickGoesDeeper(t *testing.T) {
	st := cardiologist()
	st.Recent = []recipient.RecentEvent{{At: now.Add(-24 * time.Hour), Type: arbiter.EventClicked, Channel: arbiter.Email,
		ActionID: "email-cardiolex-efficacy", Topic: "cardiolex_efficacy"}}
	got := applied(demo(t), st)
	deeper, ok1 := got["efficacy-clicked-go-deeper"]
	less, ok2 := got["efficacy-clicked-less-awareness"]
	if !ok1 || !ok2 {
		t.Fatalf("an efficacy click: rules that hold %v, want both efficacy rules", got)
	}
	if !deeper.Matches(action(t, "webinar-cardiolex-efficacy")) {
		t.Error("the next efficacy content on the topic is not boosted")
	}
	if !less.Matches(action(t, "portal-cardiolex-video")) {
		t.Error("awareness content on the topic is not demoted")
	}
	if deeper.Matches(action(t, "webinar-oncovia-efficacy")) {
		t.Error("efficacy content on another topic is boosted")
	}
}

func TestSkippedWebinar(t *testing.T) {
	st := cardiologist()
	skipped := now.Add(-2 * 24 * time.Hour)
	st.Recent = []recipient.RecentEvent{{At: skipped, Type: arbiter.EventNoShow, Channel: arbiter.Webinar, ActionID: "webinar-cardiolex-efficacy"}}
	got := applied(demo(t), st)
	sup, ok1 := got["webinar-skipped-no-followups"]
	video, ok2 := got["webinar-skipped-short-video"]
	if !ok1 || !ok2 {
		t.Fatalf("a no-show: rules that hold %v", got)
	}
	if !sup.Matches(action(t, "webinar-cardiolex-efficacy")) || !sup.ClearsAt.Equal(skipped.Add(14*24*time.Hour)) {
		t.Errorf("promotional webinars not suppressed until two weeks after the no-show (clears %v)", sup.ClearsAt)
	}
	// A promotional no-show is a commercial signal: medical webinars stay
	// open (the firewall).
	if sup.Matches(action(t, "webinar-cardiolex-trial_summary")) {
		t.Error("a medical webinar is suppressed after a promotional no-show")
	}
	if !video.Matches(action(t, "portal-cardiolex-video")) {
		t.Error("the short video is not preferred")
	}
}

func TestIgnoredPromotionalEmails(t *testing.T) {
	st := cardiologist()
	for i := range 3 {
		st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: now.Add(-time.Duration(2+5*i) * 24 * time.Hour),
			Channel: arbiter.Email, Purpose: arbiter.Promotional, State: contact.Sent})
	}
	got := applied(demo(t), st)
	if _, ok := got["ignored-promo-email-demote"]; !ok {
		t.Errorf("three unopened promotional emails: rules that hold %v, want the demotion", got)
	}
	if ap, ok := got["ignored-promo-email-preferences"]; !ok || !ap.Matches(action(t, "email-preference-centre")) {
		t.Error("the preference centre is not surfaced")
	}
	// One open in the month: not ignored.
	st.Recent = []recipient.RecentEvent{{At: now.Add(-time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email}}
	if _, ok := applied(demo(t), st)["ignored-promo-email-demote"]; ok {
		t.Error("an email opened this month, and still demoted")
	}
}

// The firewall: a medical signal must not boost or require promotional
// content; the rule is refused, naming it.
func TestFirewallRefusesMedicalSignalBoostingPromotion(t *testing.T) {
	const bad = `{"rules": [{"id": "msl-boosts-promo", "description": "d",
		"when": "medical_events.exists(e, e.type == 'msl_meeting')",
		"select": {"purposes": ["promotional"]}, "effect": "boost", "factor": 2}]}`
	_, err := rules.Parse([]byte(bad), cat)
	if err == nil || !strings.Contains(err.Error(), "msl-boosts-promo") || !strings.Contains(err.Error(), "firewall") {
		t.Errorf("a medical signal boosting promotion: %v, want a firewall refusal naming the rule", err)
	}
	// Without a purpose the selector can reach promotional content too.
	_, err = rules.Parse([]byte(strings.Replace(bad, `"purposes": ["promotional"]`, `"channels": ["email"]`, 1)), cat)
	if err == nil || !strings.Contains(err.Error(), "firewall") {
		t.Errorf("a medical signal boosting any email: %v, want a firewall refusal", err)
	}
	// The same signal may boost medical content, and may suppress promotion.
	for _, ok := range []string{
		strings.Replace(bad, `"promotional"`, `"medical"`, 1),
		strings.Replace(strings.Replace(bad, `"effect": "boost", "factor": 2`, `"effect": "suppress", "for": "24h"`, 1), `"factor": 2`, "", 1),
	} {
		if _, err := rules.Parse([]byte(ok), cat); err != nil {
			t.Errorf("%s: %v, want accepted", ok, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ name, rules, want string }{
		{"syntax", `{"rules": [{"id": "r1", "description": "d", "when": "events.exists(e, ", "select": {}, "effect": "demote", "factor": 0.5}]}`, "rules[0] (r1): when: line 1, column"},
		{"type", `{"rules": [{"id": "r1", "description": "d", "when": "now", "select": {}, "effect": "demote", "factor": 0.5}]}`, "want bool"},
		{"unknown variable", `{"rules": [{"id": "r1", "description": "d", "when": "sales > 3", "select": {}, "effect": "demote", "factor": 0.5}]}`, "undeclared reference"},
		{"effect", `{"rules": [{"id": "r1", "description": "d", "when": "true", "select": {}, "effect": "ban"}]}`, "effect"},
		{"factor", `{"rules": [{"id": "r1", "description": "d", "when": "true", "select": {}, "effect": "boost", "factor": 0.5}]}`, "factor"},
		{"duration", `{"rules": [{"id": "r1", "description": "d", "when": "true", "select": {}, "effect": "suppress", "for": "forever"}]}`, "for"},
		{"topic", `{"rules": [{"id": "r1", "description": "d", "when": "true", "select": {"topics": ["nope"]}, "effect": "demote", "factor": 0.5}]}`, "nope"},
		{"field", `{"rules": [{"id": "r1", "description": "d", "when": "true", "effect": "demote", "factor": 0.5, "extra": 1}]}`, "extra"},
		{"recent count", `{"recent_events": {"count": 60, "max_age": "1d"}, "rules": []}`, "recent_events.count"},
		{"recent age", `{"recent_events": {"count": 10, "max_age": "forever"}, "rules": []}`, "recent_events.max_age"},
		{"cost", `{"rules": [{"id": "r1", "description": "d", "when": "touches.exists(a, touches.exists(b, a.at < b.at))", "select": {}, "effect": "demote", "factor": 0.5}]}`, "may cost up to"},
	} {
		_, err := rules.Parse([]byte(tt.rules), cat)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// A suppression that fails at run time holds its selector back (fail
// closed); any other failing rule has no effect; both are counted.
func TestRuntimeFailures(t *testing.T) {
	const src = `{"rules": [
		{"id": "sup", "description": "d", "when": "1 / (events.size() - events.size()) == 1", "select": {"channels": ["email"]}, "effect": "suppress", "for": "1h"},
		{"id": "boo", "description": "d", "when": "1 / (events.size() - events.size()) == 1", "select": {"channels": ["email"]}, "effect": "boost", "factor": 2}]}`
	s, err := rules.Parse([]byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	var failures []string
	s.OnFailure = func(id string) { failures = append(failures, id) }
	got := applied(s, cardiologist())
	if ap, ok := got["sup"]; !ok || !ap.Failed || !ap.Matches(action(t, "email-cardiolex-efficacy")) {
		t.Errorf("a failing suppression: %+v, want it held, failed, over its selector", got["sup"])
	}
	if _, ok := got["boo"]; ok {
		t.Error("a failing boost has an effect")
	}
	if strings.Join(failures, ",") != "sup,boo" {
		t.Errorf("failures counted %v, want sup and boo", failures)
	}
}

// A persona follows behaviour: the first whose condition holds, and it
// changes as soon as the engagement does.
func TestPersonas(t *testing.T) {
	s := demo(t)
	persona := func(st *recipient.State) string {
		_, p, _ := s.EvaluateAll(&rules.Input{State: st, Catalog: cat, At: now, Now: now}, nil)
		return p
	}
	st := cardiologist()
	if got := persona(st); got != "low_engagement" {
		t.Errorf("no engagement: persona %q, want low_engagement", got)
	}
	st.Counters.Engagement[arbiter.Email] = 2
	if got := persona(st); got != "digital_savvy" {
		t.Errorf("email engagement: persona %q, want digital_savvy", got)
	}
	st.Counters.Engagement[arbiter.Webinar] = 3
	st.Counters.Engagement[arbiter.Portal] = 1
	if got := persona(st); got != "scientific_first" {
		t.Errorf("webinar and portal engagement above email and visits: persona %q, want scientific_first", got)
	}
	// MSL meetings are a medical signal: they do not make a persona.
	st.Counters.Engagement[arbiter.Webinar], st.Counters.Engagement[arbiter.Portal] = 0, 0
	st.Counters.Engagement[arbiter.MSLMeeting] = 9
	if got := persona(st); got != "digital_savvy" {
		t.Errorf("many MSL meetings: persona %q, want digital_savvy (as without them)", got)
	}
	if _, err := rules.Parse([]byte(`{"personas": [{"id": "Bad Id", "description": "d", "when": "true"}]}`), cat); err == nil ||
		!strings.Contains(err.Error(), "personas[0]") {
		t.Errorf("a persona id with spaces: %v, want refused, naming it", err)
	}
}

// Every way a medical signal reaches a rule is closed to rules that may
// raise promotional content, and to personas.
func TestFirewallEveryMedicalVariable(t *testing.T) {
	for _, expr := range []string{
		"medical_events.size() > 0",
		"medical_touches.exists(t, t.channel == 'msl_meeting')",
		"medical_engagement['msl_meeting'] > 1.0",
	} {
		boost := `{"rules": [{"id": "b", "description": "d", "when": "` + expr + `", "select": {"purposes": ["promotional"]}, "effect": "boost", "factor": 2}]}`
		if _, err := rules.Parse([]byte(boost), cat); err == nil || !strings.Contains(err.Error(), "firewall") {
			t.Errorf("boost on %s: %v, want refused by the firewall", expr, err)
		}
		persona := `{"personas": [{"id": "p", "description": "d", "when": "` + expr + `"}]}`
		if _, err := rules.Parse([]byte(persona), cat); err == nil || !strings.Contains(err.Error(), "firewall") {
			t.Errorf("persona on %s: %v, want refused by the firewall", expr, err)
		}
	}
	// The commercial variables hold no medical signal: an MSL meeting is
	// in neither touches nor engagement nor events.
	const probe = `{"rules": [{"id": "b", "description": "d", "select": {"purposes": ["promotional"]}, "effect": "boost", "factor": 2,
		"when": "touches.exists(t, t.channel == 'msl_meeting' || t.purpose == 'medical') || 'msl_meeting' in engagement || events.exists(e, e.type == 'msl_meeting' || e.purpose == 'medical')"}]}`
	s, err := rules.Parse([]byte(probe), cat)
	if err != nil {
		t.Fatal(err)
	}
	st := cardiologist()
	st.Counters.Engagement[arbiter.MSLMeeting] = 3
	st.Touches.Touches = []contact.Touch{
		{At: now.Add(-time.Hour), Channel: arbiter.MSLMeeting, Purpose: arbiter.Medical, State: contact.Sent},
		{At: now.Add(-time.Hour), Channel: arbiter.Email, Purpose: arbiter.Medical, State: contact.Sent},
	}
	st.Recent = []recipient.RecentEvent{
		{At: now.Add(-time.Hour), Type: arbiter.EventMSLMeeting, Channel: arbiter.MSLMeeting},
		{At: now.Add(-time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "email-cardiolex-safety"}, // medical content
		{At: now.Add(-time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email, Purpose: arbiter.Medical},
		{At: now.Add(-time.Hour), Type: arbiter.EventClicked, Channel: arbiter.Email, ActionID: "retired-action"}, // unknown: not proven commercial
	}
	if got := applied(s, st); len(got) != 0 {
		t.Errorf("a commercial rule saw a medical signal: %v", got)
	}
}

// A medical signal cannot lift what a rule holds back: a demotion whose
// condition a medical signal would negate holds all the same.
func TestMedicalSignalCannotLiftADemotion(t *testing.T) {
	const src = `{"rules": [{"id": "d", "description": "d", "select": {"purposes": ["promotional"]}, "effect": "demote", "factor": 0.5,
		"when": "!medical_events.exists(e, e.type == 'opened')"}]}`
	s, err := rules.Parse([]byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	st := cardiologist()
	if _, ok := applied(s, st)["d"]; !ok {
		t.Fatal("the demotion does not hold without any event")
	}
	st.Recent = []recipient.RecentEvent{{At: now.Add(-time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "email-cardiolex-safety"}}
	if _, ok := applied(s, st)["d"]; !ok {
		t.Error("opening medical content lifted a demotion of promotional content")
	}
}

func TestIgnoredFieldsAreRefused(t *testing.T) {
	for _, src := range []string{
		`{"rules": [{"id": "r", "description": "d", "when": "true", "select": {}, "effect": "suppress", "for": "1h", "factor": 2}]}`,
		`{"rules": [{"id": "r", "description": "d", "when": "true", "select": {}, "effect": "boost", "factor": 2, "for": "1h"}]}`,
		`{"rules": [{"id": "r", "description": "d", "when": "true", "since": "now", "select": {}, "effect": "demote", "factor": 0.5}]}`,
	} {
		if _, err := rules.Parse([]byte(src), cat); err == nil {
			t.Errorf("%s: accepted, want a field that would be ignored refused", src)
		}
	}
}

// Journeys: the demo's parse; their entry conditions are evaluated with
// the rules; the firewall and the other mistakes are refused at publish,
// naming the journey.
func TestJourneys(t *testing.T) {
	s := demo(t)
	if len(s.Journeys) != 7 || s.Journeys[0].ID != "glucanor-launch" || !s.Journeys[0].Promotional || s.Journeys[1].Promotional {
		t.Fatalf("demo journeys %+v", s.Journeys)
	}
	ai, _ := cat.Lookup("portal-glucanor-video")
	if refs := s.ActionSteps[ai]; len(refs) != 1 || refs[0] != (rules.StepRef{Journey: 0, Step: 1}) {
		t.Errorf("portal-glucanor-video makes steps %v, want step 1 of journey 0", refs)
	}
	st := cardiologist()
	st.Profile.Specialty = "endocrinology"
	st.Counters.Engagement[arbiter.Webinar] = 1
	if _, _, entry := s.EvaluateAll(&rules.Input{State: st, Catalog: cat, At: now, Now: now}, nil); entry != 1 {
		t.Errorf("entry bits %b for an engaged endocrinologist, want 1 (the launch, not the oncology update)", entry)
	}

	base := `{"recent_events": {"count": 20, "max_age": "35d"}, "personas": [{"id": "p", "description": "p", "when": "true"}], "journeys": [%s]}`
	step := func(id, action string) string {
		return `{"id": "` + id + `", "description": "d", "actions": ["` + action + `"]}`
	}
	journey := func(enter string, steps ...string) string {
		return `{"id": "j", "name": "J", "enter": "` + enter + `", "max_duration": "30d", "steps": [` + strings.Join(steps, ",") + `]}`
	}
	for _, tt := range []struct{ name, journey, want string }{
		{"a medical signal enters a promotional journey",
			journey("medical_events.exists(e, e.type == 'msl_meeting')", step("a", "email-glucanor-efficacy")),
			"journeys[0] (j): enter: a medical signal must not enter a recipient into a journey with promotional steps"},
		{"a promotional step after a medical one",
			journey("true", step("a", "email-glucanor-efficacy"), step("b", "msl_meeting-glucanor"), step("c", "rep_visit-glucanor")),
			"steps[2] (c): follows the medical step b"},
		{"an MSL meeting as an off-ramp of a promotional journey",
			`{"id": "j", "name": "J", "enter": "true", "max_duration": "30d", "steps": [` + step("a", "email-glucanor-efficacy") +
				`], "off_ramps": [{"id": "r", "description": "d", "on": ["msl_meeting"], "exit": true}]}`,
			"an MSL meeting must never move a promotional journey"},
		{"a promotional offer",
			`{"id": "j", "name": "J", "enter": "true", "max_duration": "30d", "steps": [` + step("a", "email-glucanor-efficacy") +
				`], "off_ramps": [{"id": "r", "description": "d", "on": ["unsubscribed"], "exit": true, "offer": ["rep_visit-glucanor"]}]}`,
			`offer: "rep_visit-glucanor" is promotional`},
		{"longer than the events read", `{"id": "j", "name": "J", "enter": "true", "max_duration": "60d", "steps": [` + step("a", "email-glucanor-efficacy") + `]}`,
			"max_duration"},
		{"an unknown action", journey("true", step("a", "nope")), `actions: "nope" is not in the catalog`},
		{"a persona's off-ramp to a step",
			`{"id": "j", "name": "J", "enter": "true", "max_duration": "30d", "steps": [` + step("a", "email-glucanor-efficacy") + `, ` + step("b", "portal-glucanor-video") +
				`], "off_ramps": [{"id": "r", "description": "d", "persona": "p", "to": "b"}]}`,
			"a persona's off-ramp exits"},
		{"an expression that does not compile", journey("profile.specialty ==", step("a", "email-glucanor-efficacy")), "journeys[0] (j): enter: line 1, column"},
		{"a wait on the first step",
			`{"id": "j", "name": "J", "enter": "true", "max_duration": "30d", "steps": [{"id": "a", "description": "d", "actions": ["email-glucanor-efficacy"], "wait": {"for": "1h"}}]}`,
			"the first step is due when the recipient enters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Parse([]byte(strings.Replace(base, "%s", tt.journey, 1)), cat)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// Attributes hold times as Unix seconds; rules read them with the dot
// syntax, which converts (the index syntax does not, env.go).
func TestAttributeConversions(t *testing.T) {
	at := now.Add(-time.Hour).Truncate(time.Second)
	src := `{"rules": [{"id": "r", "description": "d", "effect": "suppress", "for": "1h", "select": {},
		"when": "has(profile.attributes.results_ready_at) && timestamp(int(profile.attributes.results_ready_at)) == now - duration('1h')"}]}`
	s, err := rules.Parse([]byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	st := cardiologist()
	st.Profile.Attributes = map[string]float64{"results_ready_at": float64(at.Unix())}
	failed := ""
	s.OnFailure = func(id string) { failed = id }
	got := s.Evaluate(&rules.Input{State: st, Catalog: cat, At: at.Add(time.Hour), Now: at.Add(time.Hour)}, nil)
	if failed != "" || len(got) != 1 || got[0].Failed {
		t.Errorf("applied %+v, failure %q: want the rule to hold", got, failed)
	}
}

// BenchmarkEvaluate is the cost of the rules per decision: the demo's and
// the benchmark's rule sets (rules, personas, journeys' entry conditions)
// over an HCP with 20 recent events and 12 touches.
func BenchmarkEvaluate(b *testing.B) {
	benchRules, err := os.ReadFile("../bench/rules.json")
	if err != nil {
		b.Fatal(err)
	}
	st := cardiologist()
	st.Counters.Engagement[arbiter.Email] = 1.2
	st.Counters.Engagement[arbiter.Webinar] = 0.8
	types := []arbiter.EventType{arbiter.EventOpened, arbiter.EventClicked, arbiter.EventSent, arbiter.EventAttended, arbiter.EventDelivered}
	actions := []string{"email-cardiolex-efficacy", "email-cardiolex-safety", "webinar-cardiolex-efficacy", "portal-cardiolex-video"}
	for i := range 20 {
		st.Recent = append(st.Recent, recipient.RecentEvent{At: now.Add(-time.Duration(i*7) * time.Hour), Type: types[i%len(types)],
			Channel: arbiter.Email, ActionID: actions[i%len(actions)]})
	}
	for i := range 12 {
		st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: now.Add(-time.Duration(i*30) * time.Hour), Channel: arbiter.Email,
			Purpose: arbiter.Promotional, ActionID: actions[i%len(actions)], State: contact.Sent})
	}
	for _, bc := range []struct {
		name string
		src  []byte
		cat  *catalog.Catalog
	}{{"demo", rules.DemoJSON(), cat}, {"bench", benchRules, benchCatalog(b)}} {
		s, err := rules.Parse(bc.src, bc.cat)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/rules=%d/personas=%d/journeys=%d", bc.name, len(s.Rules), len(s.Personas), len(s.Journeys)), func(b *testing.B) {
			in := &rules.Input{State: st, Catalog: bc.cat, At: now, Now: now}
			var out []rules.Applied
			b.ReportAllocs()
			for b.Loop() {
				out, _, _ = s.EvaluateAll(in, out[:0])
			}
		})
	}
}

// BenchmarkEvaluateNoEvents is the cost of the rules per decision for an
// HCP with no recent event and no touch, as most of the server benchmark's
// population: what is left is the cost of evaluating each program.
func BenchmarkEvaluateNoEvents(b *testing.B) {
	benchRules, err := os.ReadFile("../bench/rules.json")
	if err != nil {
		b.Fatal(err)
	}
	st := cardiologist()
	st.Counters.Engagement[arbiter.Email] = 1.2
	for _, bc := range []struct {
		name string
		src  []byte
		cat  *catalog.Catalog
	}{{"demo", rules.DemoJSON(), cat}, {"bench", benchRules, benchCatalog(b)}} {
		s, err := rules.Parse(bc.src, bc.cat)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			in := &rules.Input{State: st, Catalog: bc.cat, At: now, Now: now}
			var out []rules.Applied
			b.ReportAllocs()
			for b.Loop() {
				out, _, _ = s.EvaluateAll(in, out[:0])
			}
		})
	}
}

// benchCatalog is the benchmark's catalog (bench/catalog -n 1000).
func benchCatalog(b testing.TB) *catalog.Catalog {
	path := filepath.Join(b.TempDir(), "catalog.json")
	out, err := exec.Command("go", "run", "../bench/catalog", "-n", "1000", "-o", path).CombinedOutput()
	if err != nil {
		b.Fatalf("bench/catalog: %v: %s", err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	c, err := catalog.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// An event is a CEL map like any other: it equals the map literal of its
// fields, has() and in see its keys.
func TestEventsAreMaps(t *testing.T) {
	src := `{"rules": [{"id": "r", "description": "d", "effect": "demote", "factor": 0.5, "select": {},
		"when": "events.exists(e, e == {'type': e.type, 'channel': e.channel, 'topic': e.topic, 'action_id': e.action_id, 'format': e.format, 'depth': e.depth, 'purpose': e.purpose, 'at': e.at} && has(e.topic) && 'depth' in e && !has(e.nope))"}]}`
	s, err := rules.Parse([]byte(src), cat)
	if err != nil {
		t.Fatal(err)
	}
	st := cardiologist()
	st.Recent = []recipient.RecentEvent{{At: now.Add(-time.Hour), Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "email-cardiolex-efficacy"}}
	failed := ""
	s.OnFailure = func(id string) { failed = id }
	if got := s.Evaluate(&rules.Input{State: st, Catalog: cat, At: now, Now: now}, nil); failed != "" || len(got) != 1 {
		t.Errorf("applied %+v, failure %q: want the rule to hold", got, failed)
	}
}

// The shipped rule sets (the demo's and the benchmark's) evaluate without
// a failure for recipients with and without engagement on each channel:
// a persona reading a key the engagement map never holds failed for every
// decision whose earlier personas did not match, and the later ones never
// ran.
func TestShippedRulesDoNotFail(t *testing.T) {
	benchRules, err := os.ReadFile("../bench/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	quiet := cardiologist()
	busy := cardiologist()
	for _, ch := range []arbiter.Channel{arbiter.Email, arbiter.Webinar, arbiter.Portal, arbiter.RepVisit} {
		busy.Counters.Engagement[ch] = 0.9
	}
	for _, bc := range []struct {
		name string
		src  []byte
		cat  *catalog.Catalog
	}{{"demo", rules.DemoJSON(), cat}, {"bench", benchRules, benchCatalog(t)}} {
		s, err := rules.Parse(bc.src, bc.cat)
		if err != nil {
			t.Fatal(err)
		}
		var failures []string
		s.OnFailure = func(id string) { failures = append(failures, id) }
		for _, st := range []*recipient.State{quiet, busy} {
			s.EvaluateAll(&rules.Input{State: st, Catalog: bc.cat, At: now, Now: now}, nil)
		}
		if len(failures) > 0 {
			t.Errorf("%s rules: evaluations failed: %v", bc.name, failures)
		}
	}
}
