package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// The demo journey's actions, in step order.
var launchSteps = []string{"webinar-glucanor-efficacy", "portal-glucanor-video", "email-glucanor-launch-followup", "msl_meeting-glucanor"}

// addEndocrinologist creates a recipient the demo journey is for, with
// consent on every channel it uses and some email engagement (its entry
// condition).
func addEndocrinologist(t *testing.T, c *client.Client, id string, consents ...client.ConsentRecord) {
	t.Helper()
	ctx := context.Background()
	if err := c.UpsertProfile(ctx, client.Profile{HCPID: id, Market: "US", Audience: arbiter.HCP, Specialty: "endocrinology",
		TimeZone: "America/Chicago"}); err != nil {
		t.Fatal(err)
	}
	if len(consents) == 0 {
		for _, ch := range []arbiter.Channel{arbiter.Webinar, arbiter.Portal, arbiter.Email, arbiter.MSLMeeting} {
			for _, pu := range []arbiter.Purpose{arbiter.Promotional, arbiter.Medical, arbiter.Service} {
				consents = append(consents, optIn(ch, pu))
			}
		}
	}
	for _, r := range consents {
		if _, err := c.SetConsent(ctx, id, r, true); err != nil {
			t.Fatal(err)
		}
	}
	// Engaged enough not to be low_engagement, even after an unsubscribe.
	for i := range 3 {
		recordTouch(t, c, client.Event{ID: fmt.Sprint(id, "-clicked-", i), HCPID: id, Type: arbiter.EventClicked, Channel: arbiter.Email,
			ActionID: "email-glucanor-dosing", OccurredAt: time.Now().Add(-time.Duration(48+i) * time.Hour)})
	}
}

type journeyView struct {
	recommended map[string]*client.Recommendation
	suppressed  map[string]client.Suppression
}

func decideLaunch(t *testing.T, c *client.Client, id string, extra ...string) journeyView {
	t.Helper()
	d, err := c.Decide(context.Background(), id, client.DecideOptions{Limit: 10, Explain: true, Candidates: append(append([]string{}, launchSteps...), extra...)})
	if err != nil {
		t.Fatalf("decide %s: %v", id, err)
	}
	v := journeyView{recommended: map[string]*client.Recommendation{}, suppressed: map[string]client.Suppression{}}
	for i := range d.Recommendations {
		v.recommended[d.Recommendations[i].ActionID] = &d.Recommendations[i]
	}
	for _, s := range d.Suppressed {
		v.suppressed[s.ActionID] = s
	}
	return v
}

func launchProgress(t *testing.T, c *client.Client, id string) client.JourneyProgress {
	t.Helper()
	ps, _, err := c.JourneyProgress(context.Background(), id, time.Time{})
	if err != nil {
		t.Fatalf("journey progress %s: %v", id, err)
	}
	for _, p := range ps {
		if p.JourneyID == "glucanor-launch" {
			return p
		}
	}
	t.Fatalf("no glucanor-launch progress for %s: %+v", id, ps)
	return client.JourneyProgress{}
}

// The demo journey, end to end through the Go client, on a real Redis:
// enter, wait for the webinar, advance on attendance, wait for the
// follow-up, a replayed event that advances nothing, the goal that ends it.
func TestJourneyLaunchEndToEnd(t *testing.T) {
	// A long poll: the follower's reads must not fall among the decision's round trips counted below.
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json", "-definitions-poll", "1h")
	c := ts.client
	const id = "JOURNEY-GLU-1"
	addEndocrinologist(t, c, id)
	now := time.Now()

	// Entry: the invitation is preferred and says it starts the journey;
	// nothing else of the journey is held back yet.
	v := decideLaunch(t, c, id)
	r := v.recommended[launchSteps[0]]
	if r == nil || r.Journey == nil || r.Journey.Step != 1 || !strings.Contains(r.Reason, "starts 'Glucanor launch'") {
		t.Fatalf("entry: invitation %+v, want it recommended as step 1 of the journey", r)
	}
	if s, held := v.suppressed[launchSteps[1]]; held && strings.HasPrefix(string(s.Reason), "JOURNEY") {
		t.Errorf("entry: the video is held back by the journey before they entered: %+v", s)
	}
	if p := launchProgress(t, c, id); p.Status != "eligible" {
		t.Errorf("entry: progress %+v, want eligible", p)
	}

	// Invited: the video waits for them to attend.
	recordTouch(t, c, client.Event{ID: id + "-invite", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-5 * 24 * time.Hour))})
	v = decideLaunch(t, c, id)
	if s := v.suppressed[launchSteps[1]]; s.Reason != client.SuppressionJourneyWait || !strings.Contains(s.Detail, "waits for them to be attended") ||
		!s.ClearsAt.IsZero() {
		t.Errorf("invited: the video %+v, want JOURNEY_WAIT for attendance, no clear time", s)
	}
	if s := v.suppressed[launchSteps[2]]; s.Reason != client.SuppressionJourneyWait {
		t.Errorf("invited: the follow-up email %+v, want JOURNEY_WAIT", s)
	}

	// With every rule, persona and journey, a decision is still one
	// Redis round trip: journeys read nothing the decision did not. (Its
	// receipt is written after the answer, apart: flushed and counted.)
	flushLog(t, ts)
	before := ts.trips.N()
	decideLaunch(t, c, id)
	flushLog(t, ts)
	if got := ts.trips.N() - before; got != 2 {
		t.Errorf("a decision with the demo's rules and journeys, and its receipt, made %d Redis round trips, want 1 + 1", got)
	}

	// Attended three days ago: the video was due a day later, so now.
	attended := client.Event{ID: id + "-attended", HCPID: id, Type: arbiter.EventAttended, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-3 * 24 * time.Hour))}
	recordTouch(t, c, attended)
	v = decideLaunch(t, c, id)
	r = v.recommended[launchSteps[1]]
	if r == nil || r.Journey == nil || r.Journey.StepID != "video" || !strings.Contains(r.Reason, "step 2 of 'Glucanor launch'") {
		t.Fatalf("attended: the video %+v (suppressed %+v), want it recommended as step 2", r, v.suppressed[launchSteps[1]])
	}
	p := launchProgress(t, c, id)
	if p.Status != "active" || p.StepID != "video" || !p.DueAt.Equal(attended.OccurredAt.Add(24*time.Hour)) {
		t.Errorf("attended: progress %+v, want the video due a day after the attendance", p)
	}
	due := listDue(t, c, "glucanor-launch", "")
	if due[id].StepID != "video" {
		t.Errorf("attended: ListDue %v, want %s due for the video", due, id)
	}

	// The video went out an hour ago: the follow-up is due two days later.
	video := ms(now.Add(-time.Hour))
	recordTouch(t, c, client.Event{ID: id + "-video", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Portal,
		ActionID: launchSteps[1], OccurredAt: video})
	v = decideLaunch(t, c, id)
	if s := v.suppressed[launchSteps[2]]; s.Reason != client.SuppressionJourneyWait || !s.ClearsAt.Equal(video.Add(48*time.Hour)) {
		t.Errorf("video sent: the follow-up %+v, want JOURNEY_WAIT clearing at %v", s, video.Add(48*time.Hour))
	}
	if _, ok := listDue(t, c, "glucanor-launch", "")[id]; ok {
		t.Errorf("video sent: %s is still listed as due", id)
	}
	due = map[string]client.Due{}
	if err := c.ListDue(context.Background(), "glucanor-launch", "follow-up", video.Add(49*time.Hour), func(d client.Due) error {
		due[d.RecipientID] = d
		return nil
	}); err != nil || due[id].StepID != "follow-up" {
		t.Errorf("ListDue two days on: %v, %v; want %s due for the follow-up", due, err, id)
	}

	// The follow-up went out: the next step is the MSL meeting, which the
	// journey notes but never prefers or holds (a launch campaign must not
	// steer medical contact: the firewall).
	recordTouch(t, c, client.Event{ID: id + "-follow-up", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Email,
		ActionID: launchSteps[2], OccurredAt: ms(now.Add(-30 * time.Minute))})
	if p := launchProgress(t, c, id); p.StepID != "msl" {
		t.Errorf("follow-up sent: progress %+v, want the MSL step next", p)
	}
	v = decideLaunch(t, c, id)
	if r := v.recommended[launchSteps[3]]; r != nil && (r.Journey != nil || strings.Contains(r.Reason, "Glucanor launch")) {
		t.Errorf("the MSL meeting is preferred by the promotional journey: %+v", r.Journey)
	}
	if s, ok := v.suppressed[launchSteps[3]]; ok && strings.HasPrefix(string(s.Reason), "JOURNEY") {
		t.Errorf("the MSL meeting is held by the promotional journey: %+v", s)
	}

	// A replayed attendance (the same event id) is a duplicate and
	// advances nothing.
	prev := launchProgress(t, c, id)
	if dup, err := c.RecordEvent(context.Background(), attended); err != nil || !dup {
		t.Fatalf("replayed attendance: duplicate=%v, %v", dup, err)
	}
	if after := launchProgress(t, c, id); after.StepID != prev.StepID || !after.DueAt.Equal(prev.DueAt) {
		t.Errorf("after a replayed event: %+v, want %+v", after, prev)
	}

	// The goal ends the journey: its steps rest (nothing repeated) until
	// they may go through it again, its maximum duration later.
	goal := ms(now.Add(-time.Minute))
	recordTouch(t, c, client.Event{ID: id + "-goal", HCPID: id, Type: arbiter.EventGoal, Channel: arbiter.Email, OccurredAt: goal})
	if p := launchProgress(t, c, id); p.Status != "completed" {
		t.Errorf("after the goal: %+v, want completed", p)
	}
	v = decideLaunch(t, c, id)
	// (The follow-up email went out half an hour ago: the catalog's
	// minimum gap for email, an earlier gate, holds it first.)
	for _, a := range launchSteps[:2] { // the medical step is never the promotional journey's to hold
		if s := v.suppressed[a]; s.Reason != client.SuppressionJourney || !s.ClearsAt.Equal(goal.Add(35*24*time.Hour)) ||
			!strings.Contains(s.Detail, "completed 'Glucanor launch'") {
			t.Errorf("after the goal, %s: %+v, want JOURNEY until the goal + 35 days", a, s)
		}
	}

	st, err := c.JourneyStats(context.Background(), "glucanor-launch", time.Time{})
	if err != nil || st.Entered < 1 || st.Converted < 1 || st.CompletionRate <= 0 {
		t.Errorf("stats %+v, %v; want the recipient entered and converted", st, err)
	}
}

func listDue(t *testing.T, c *client.Client, journey, step string) map[string]client.Due {
	t.Helper()
	out := map[string]client.Due{}
	if err := c.ListDue(context.Background(), journey, step, time.Time{}, func(d client.Due) error {
		out[d.RecipientID] = d
		return nil
	}); err != nil {
		t.Fatalf("list due: %v", err)
	}
	return out
}

// The off-ramps: a skipped webinar makes the video due at once; an
// unsubscribe takes them out, with the preference centre instead and never
// more of the same; an operator's move; a journey never passes a gate.
func TestJourneyOffRampsAndOperators(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json", "-definitions-poll", "50ms")
	c := ts.client
	ctx := context.Background()
	const id = "JOURNEY-GLU-2"
	addEndocrinologist(t, c, id)
	now := time.Now()
	recordTouch(t, c, client.Event{ID: id + "-invite", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-5 * 24 * time.Hour))})
	recordTouch(t, c, client.Event{ID: id + "-noshow", HCPID: id, Type: arbiter.EventNoShow, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-3 * 24 * time.Hour))})
	v := decideLaunch(t, c, id)
	r := v.recommended[launchSteps[1]]
	if r == nil || r.Journey == nil || r.Journey.OffRampID != "skipped-webinar" || !strings.Contains(r.Reason, "skipped the webinar") {
		t.Fatalf("after a no-show: the video %+v (suppressed %+v), want it recommended through the off-ramp", r, v.suppressed[launchSteps[1]])
	}

	// An operator pauses the journey: its steps stop (on this replica
	// when the call returns; on the others within their poll).
	if err := c.PauseJourney(ctx, "glucanor-launch", true); err != nil {
		t.Fatal(err)
	}
	if !launchProgress(t, c, id).Paused {
		t.Error("the journey is not paused once PauseJourney returned")
	}
	if s := decideLaunch(t, c, id).suppressed[launchSteps[1]]; s.Reason != client.SuppressionJourneyWait || !strings.Contains(s.Detail, "paused") {
		t.Errorf("paused: the video %+v, want JOURNEY_WAIT, paused", s)
	}
	if err := c.PauseJourney(ctx, "glucanor-launch", false); err != nil {
		t.Fatal(err)
	}
	if launchProgress(t, c, id).Paused {
		t.Error("the journey is still paused once ResumeJourney returned")
	}

	// An operator moves them to the follow-up: due at once.
	p, err := c.MoveInJourney(ctx, id, "glucanor-launch", "follow-up")
	if err != nil || p.Status != "active" || p.StepID != "follow-up" || p.DueAt.After(time.Now()) {
		t.Fatalf("moved to the follow-up: %+v, %v", p, err)
	}
	if r := decideLaunch(t, c, id).recommended[launchSteps[2]]; r == nil || r.Journey == nil || r.Journey.StepID != "follow-up" {
		t.Errorf("after the move, the follow-up %+v, want it recommended as the journey's step", r)
	}
	if _, err := c.MoveInJourney(ctx, id, "glucanor-launch", "no-such-step"); client.FieldViolations(err)["step_id"] == "" {
		t.Errorf("a move to an unknown step: %v, want a step_id violation", err)
	}
	if _, err := c.MoveInJourney(ctx, "JOURNEY-NOBODY", "glucanor-launch", "video"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("a move of an unknown recipient: %v, want NotFound", err)
	}

	// Unsubscribed (another recipient, invited): out of the journey, its
	// steps held back, the preference centre preferred instead.
	const unsub = "JOURNEY-GLU-2U"
	addEndocrinologist(t, c, unsub)
	recordTouch(t, c, client.Event{ID: unsub + "-invite", HCPID: unsub, Type: arbiter.EventSent, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-5 * 24 * time.Hour))})
	recordTouch(t, c, client.Event{ID: unsub + "-unsub", HCPID: unsub, Type: arbiter.EventUnsubscribed, Channel: arbiter.Email,
		OccurredAt: ms(now.Add(-time.Hour))})
	if p := launchProgress(t, c, unsub); p.Status != "exited" || p.OffRampID != "unsubscribed" {
		t.Errorf("after the unsubscribe: %+v, want exited by the unsubscribed off-ramp", p)
	}
	v = decideLaunch(t, c, unsub, "email-preference-centre")
	for _, a := range launchSteps[:3] {
		if v.recommended[a] != nil {
			t.Errorf("after the unsubscribe, %s is recommended: more of the same", a)
		}
	}
	if s := v.suppressed[launchSteps[1]]; s.Reason != client.SuppressionJourney || !strings.Contains(s.Detail, "unsubscribed") {
		t.Errorf("after the unsubscribe, the video %+v, want JOURNEY naming the off-ramp", s)
	}
	if r := v.recommended["email-preference-centre"]; r == nil || r.Journey == nil || r.Journey.OffRampID != "unsubscribed" {
		t.Errorf("after the unsubscribe, the preference centre %+v, want it preferred by the off-ramp", r)
	}
}

// A journey never lets a step past a gate: a due video without portal
// consent is held back for consent.
func TestJourneyNeverBypassesAGate(t *testing.T) {
	ts := start(t, singleRedis(t), 1, "-rules", "../../rules/demo_rules.json")
	c := ts.client
	const id = "JOURNEY-GLU-3"
	noPortal := optIn(arbiter.Portal, arbiter.Promotional)
	noPortal.Status = client.ConsentOptOut
	addEndocrinologist(t, c, id, optIn(arbiter.Webinar, arbiter.Promotional), optIn(arbiter.Email, arbiter.Promotional), noPortal)
	now := time.Now()
	recordTouch(t, c, client.Event{ID: id + "-invite", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-5 * 24 * time.Hour))})
	recordTouch(t, c, client.Event{ID: id + "-noshow", HCPID: id, Type: arbiter.EventNoShow, Channel: arbiter.Webinar,
		ActionID: launchSteps[0], OccurredAt: ms(now.Add(-3 * 24 * time.Hour))})
	if p := launchProgress(t, c, id); p.StepID != "video" || p.DueAt.After(now) {
		t.Fatalf("progress %+v, want the video due", p)
	}
	v := decideLaunch(t, c, id)
	if v.recommended[launchSteps[1]] != nil {
		t.Errorf("the due video was recommended without portal consent")
	}
	if s := v.suppressed[launchSteps[1]]; s.Reason != client.SuppressionNoConsent && s.Reason != client.SuppressionConsentUnknown {
		t.Errorf("the due video without consent: %+v, want a consent suppression", s)
	}
}

// Two servers applying one recipient's events concurrently, in any order,
// end in the state a sequential application reaches; and applying them all
// again (replays) changes nothing.
func TestJourneyConcurrentServersReachTheSequentialState(t *testing.T) {
	b := singleRedis(t)
	a := start(t, b, 1, "-rules", "../../rules/demo_rules.json")
	z := start(t, b, 1, "-rules", "../../rules/demo_rules.json")
	now := time.Now()
	events := func(id string) []client.Event {
		return []client.Event{
			{ID: id + "-invite", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Webinar, ActionID: launchSteps[0], OccurredAt: ms(now.Add(-6 * 24 * time.Hour))},
			{ID: id + "-registered", HCPID: id, Type: arbiter.EventRegistered, Channel: arbiter.Webinar, ActionID: launchSteps[0], OccurredAt: ms(now.Add(-5 * 24 * time.Hour))},
			{ID: id + "-attended", HCPID: id, Type: arbiter.EventAttended, Channel: arbiter.Webinar, ActionID: launchSteps[0], OccurredAt: ms(now.Add(-4 * 24 * time.Hour))},
			{ID: id + "-video", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Portal, ActionID: launchSteps[1], OccurredAt: ms(now.Add(-3 * 24 * time.Hour))},
			{ID: id + "-watched", HCPID: id, Type: arbiter.EventVideoWatched, Channel: arbiter.Portal, ActionID: launchSteps[1], OccurredAt: ms(now.Add(-60 * time.Hour))},
			{ID: id + "-email", HCPID: id, Type: arbiter.EventSent, Channel: arbiter.Email, ActionID: launchSteps[2], OccurredAt: ms(now.Add(-2 * time.Hour))},
		}
	}
	addEndocrinologist(t, a.client, "JOURNEY-SEQ")
	for _, e := range events("JOURNEY-SEQ") {
		recordTouch(t, a.client, e)
	}
	want := launchProgress(t, a.client, "JOURNEY-SEQ")
	if want.Status != "active" || want.StepID != "msl" {
		t.Fatalf("sequential: %+v, want active at the MSL step", want)
	}
	r := rand.New(rand.NewPCG(7, 11))
	for round := range 5 {
		id := fmt.Sprintf("JOURNEY-CONC-%d", round)
		addEndocrinologist(t, a.client, id)
		es := events(id)
		r.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(es))
		for i, e := range es {
			// Each event to both servers at once: one applies it, the
			// other finds a duplicate.
			for _, srv := range []*testServer{a, z}[i%2:] {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := srv.client.RecordEvent(context.Background(), e); err != nil {
						errs <- err
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, srv := range []*testServer{a, z} {
			got := launchProgress(t, srv.client, id)
			if got.Status != want.Status || got.StepID != want.StepID || !got.DueAt.Equal(want.DueAt) || !got.EnteredAt.Equal(want.EnteredAt) {
				t.Errorf("round %d: %+v, want %+v", round, got, want)
			}
		}
	}
}
