package rules

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// launch is the demo journey's shape, without the catalog.
func launch() *Journey {
	return &Journey{
		ID: "launch", Name: "Launch", MaxDuration: 30 * 24 * time.Hour, Boost: 3, Promotional: true,
		Goal: []arbiter.EventType{arbiter.EventGoal},
		Steps: []Step{
			{ID: "invite", Description: "webinar invitation", Actions: []string{"webinar"}},
			{ID: "video", Description: "the video", Actions: []string{"video"}, WaitEvent: arbiter.EventAttended, WaitFor: 24 * time.Hour},
			{ID: "email", Description: "the follow-up", Actions: []string{"email"}, WaitFor: 48 * time.Hour},
		},
		OffRamps: []OffRamp{
			{ID: "skipped", Description: "skipped: the video", On: []arbiter.EventType{arbiter.EventNoShow}, To: 1},
			{ID: "unsub", Description: "unsubscribed", On: []arbiter.EventType{arbiter.EventUnsubscribed}, To: -1, Offer: []string{"prefs"}},
			{ID: "low", Description: "low engagement", Persona: "low", To: -1, Offer: []string{"prefs"}},
		},
	}
}

func sent(action string, at time.Time) contact.Touch {
	return contact.Touch{At: at, Channel: arbiter.Email, Purpose: arbiter.Promotional, ActionID: action, State: contact.Sent}
}

func event(typ arbiter.EventType, action string, at time.Time) recipient.RecentEvent {
	return recipient.RecentEvent{At: at, Type: typ, Channel: arbiter.Webinar, ActionID: action}
}

func progress(j *Journey, st *recipient.State, at time.Time, entry bool, persona string) Progress {
	return j.Progress(st, nil, at, entry, persona, &Buffer{})
}

func TestJourneyProgress(t *testing.T) {
	j := launch()
	h := time.Hour
	tests := []struct {
		name    string
		touches []contact.Touch
		events  []recipient.RecentEvent
		over    []recipient.JourneyOverride
		at      time.Time
		entry   bool
		persona string
		// want
		status  Status
		step    int
		due     time.Time
		waiting arbiter.EventType
	}{
		{name: "not entered", at: t0, status: NotEntered},
		{name: "entry holds: the first step is due", at: t0, entry: true, status: Eligible, step: 0, due: t0},
		{name: "invited: waits for attendance", touches: []contact.Touch{sent("webinar", t0)}, at: t0.Add(h),
			status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "attended: the video is due a day later",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventAttended, "webinar", t0.Add(72*h))},
			at: t0.Add(73 * h), status: Active, step: 1, due: t0.Add(96 * h)},
		{name: "an attendance of another webinar does not count",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventAttended, "other-webinar", t0.Add(72*h))},
			at: t0.Add(73 * h), status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "video sent: the email is due two days later",
			touches: []contact.Touch{sent("webinar", t0), sent("video", t0.Add(100*h))},
			events:  []recipient.RecentEvent{event(arbiter.EventAttended, "webinar", t0.Add(72*h))},
			at:      t0.Add(101 * h), status: Active, step: 2, due: t0.Add(148 * h)},
		{name: "no-show: the off-ramp makes the video due at once",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventNoShow, "webinar", t0.Add(72*h))},
			at: t0.Add(73 * h), status: Active, step: 1, due: t0.Add(72 * h)},
		{name: "unsubscribed: out",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventUnsubscribed, "", t0.Add(5*h))},
			at: t0.Add(6 * h), status: Exited},
		{name: "low engagement: out", touches: []contact.Touch{sent("webinar", t0)}, at: t0.Add(6 * h), persona: "low", status: Exited},
		{name: "goal: completed",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventGoal, "", t0.Add(5*h))},
			at: t0.Add(6 * h), status: Completed},
		{name: "every step done: completed",
			touches: []contact.Touch{sent("webinar", t0), sent("video", t0.Add(h)), sent("email", t0.Add(2*h))},
			at:      t0.Add(6 * h), status: Completed},
		{name: "a dismissed suggestion of the first step does not enter the journey",
			events: []recipient.RecentEvent{event(arbiter.EventDismissed, "webinar", t0)}, at: t0.Add(h), status: NotEntered},
		{name: "a dismissed suggestion of the next step does not mark it done",
			touches: []contact.Touch{sent("webinar", t0)},
			events:  []recipient.RecentEvent{event(arbiter.EventDismissed, "video", t0.Add(h))},
			at:      t0.Add(2 * h), status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "a completed suggestion of the next step marks it done",
			touches: []contact.Touch{sent("webinar", t0)},
			events:  []recipient.RecentEvent{event(arbiter.EventCompleted, "video", t0.Add(h))},
			at:      t0.Add(2 * h), status: Active, step: 2, due: t0.Add(49 * h)},
		{name: "max duration: expired", touches: []contact.Touch{sent("webinar", t0)}, at: t0.Add(31 * 24 * h), status: Expired},
		{name: "events after the decision time do not count",
			touches: []contact.Touch{sent("webinar", t0)}, events: []recipient.RecentEvent{event(arbiter.EventGoal, "", t0.Add(5*h))},
			at: t0.Add(4 * h), status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "an MSL meeting never moves a promotional journey",
			touches: []contact.Touch{sent("webinar", t0)},
			events:  []recipient.RecentEvent{{At: t0.Add(h), Type: arbiter.EventNoShow, Channel: arbiter.MSLMeeting}},
			at:      t0.Add(2 * h), status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "operator moved them to the email",
			touches: []contact.Touch{sent("webinar", t0)},
			over:    []recipient.JourneyOverride{{Journey: "launch", Step: "email", At: t0.Add(h), Principal: "ops"}},
			at:      t0.Add(2 * h), status: Active, step: 2, due: t0.Add(h)},
		{name: "a move to a step the journey no longer has moves nothing",
			touches: []contact.Touch{sent("webinar", t0)},
			over:    []recipient.JourneyOverride{{Journey: "launch", Step: "gone", At: t0.Add(h), Principal: "ops"}},
			at:      t0.Add(2 * h), status: Active, step: 1, waiting: arbiter.EventAttended},
		{name: "operator moved them out",
			touches: []contact.Touch{sent("webinar", t0)},
			over:    []recipient.JourneyOverride{{Journey: "launch", Step: "", At: t0.Add(h), Principal: "ops"}},
			at:      t0.Add(2 * h), status: Exited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &recipient.State{Recent: tt.events, JourneyOverrides: tt.over}
			st.Touches.Touches = tt.touches
			p := progress(j, st, tt.at, tt.entry, tt.persona)
			if p.Status != tt.status || (tt.status == Active || tt.status == Eligible) && (p.Step != tt.step || !p.DueAt.Equal(tt.due) || p.WaitingFor != tt.waiting) {
				t.Errorf("progress %v at step %d, due %v, waiting for %v; want %v at step %d, due %v, waiting for %v",
					p.Status, p.Step, p.DueAt, p.WaitingFor, tt.status, tt.step, tt.due, tt.waiting)
			}
		})
	}
}

// What a journey holds back, and prefers.
func TestJourneyHoldsAndOffers(t *testing.T) {
	j := launch()
	st := &recipient.State{Recent: []recipient.RecentEvent{event(arbiter.EventAttended, "webinar", t0.Add(2*time.Hour))}}
	st.Touches.Touches = []contact.Touch{sent("webinar", t0)}
	at := t0.Add(3 * time.Hour)
	p := progress(j, st, at, false, "")
	if holds, until := p.Holds(1, at); !holds || !until.Equal(t0.Add(26*time.Hour)) {
		t.Errorf("the video before it is due: holds %v until %v, want until %v", holds, until, t0.Add(26*time.Hour))
	}
	if holds, _ := p.Holds(2, at); !holds {
		t.Error("the email, two steps ahead, is not held back")
	}
	if holds, _ := p.Holds(0, at); holds {
		t.Error("the done invitation is held back")
	}
	later := t0.Add(27 * time.Hour)
	p = progress(j, st, later, false, "")
	if holds, _ := p.Holds(1, later); holds || !p.Due(1, later) {
		t.Errorf("the video once due: holds %v, due %v", holds, p.Due(1, later))
	}
	p.Paused = true
	if holds, _ := p.Holds(1, later); !holds || p.Due(1, later) {
		t.Error("a paused journey's due step is not held back")
	}

	st.Recent = append(st.Recent, event(arbiter.EventUnsubscribed, "", t0.Add(4*time.Hour)))
	p = progress(j, st, later, false, "")
	for k := range j.Steps {
		if holds, until := p.Holds(k, later); !holds || !until.Equal(t0.Add(4*time.Hour+j.MaxDuration)) {
			t.Errorf("after the unsubscribe, step %d: holds %v until %v", k, holds, until)
		}
	}
	if !p.Offers("prefs", later) || p.Offers("video", later) {
		t.Error("after the unsubscribe, the preference centre is not offered (or the video is)")
	}
}

// Progress depends on what happened, not on the order it was told in, nor
// on how many times: an event replayed never advances a journey twice,
// and servers that applied events in any order agree.
func TestJourneyProgressIsOrderFreeAndIdempotent(t *testing.T) {
	j := launch()
	touches := []contact.Touch{sent("webinar", t0), sent("video", t0.Add(30*time.Hour))}
	events := []recipient.RecentEvent{
		event(arbiter.EventRegistered, "webinar", t0.Add(time.Hour)),
		event(arbiter.EventAttended, "webinar", t0.Add(5*time.Hour)),
		event(arbiter.EventOpened, "video", t0.Add(31*time.Hour)),
		event(arbiter.EventClicked, "other", t0.Add(32*time.Hour)),
	}
	at := t0.Add(40 * time.Hour)
	st := &recipient.State{Recent: events}
	st.Touches.Touches = touches
	want := progress(j, st, at, true, "")
	if want.Status != Active || want.Step != 2 {
		t.Fatalf("progress %v step %d, want active at step 2", want.Status, want.Step)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		st := &recipient.State{}
		st.Recent = append(st.Recent, events...)
		st.Touches.Touches = append(st.Touches.Touches, touches...)
		// Replays: some events and touches twice.
		for range r.IntN(4) {
			st.Recent = append(st.Recent, events[r.IntN(len(events))])
			st.Touches.Touches = append(st.Touches.Touches, touches[r.IntN(len(touches))])
		}
		r.Shuffle(len(st.Recent), func(a, b int) { st.Recent[a], st.Recent[b] = st.Recent[b], st.Recent[a] })
		r.Shuffle(len(st.Touches.Touches), func(a, b int) {
			st.Touches.Touches[a], st.Touches.Touches[b] = st.Touches.Touches[b], st.Touches.Touches[a]
		})
		got := progress(j, st, at, true, "")
		if got.Status != want.Status || got.Step != want.Step || !got.DueAt.Equal(want.DueAt) || !got.EnteredAt.Equal(want.EnteredAt) {
			t.Fatalf("shuffled and replayed: %+v, want %+v", got, want)
		}
	}
}

// The firewall in a promotional journey: a medical signal on its medical
// step (an MSL meeting missed) marks nothing but that step; it never fires
// an off-ramp back to promotional content, nor satisfies a wait.
func TestJourneyMedicalSignalMovesNoPromotionalStep(t *testing.T) {
	j := launch()
	j.Steps = append(j.Steps, Step{ID: "msl", Description: "an MSL meeting", Actions: []string{"msl"}, Medical: true})
	h := time.Hour
	st := &recipient.State{Recent: []recipient.RecentEvent{
		event(arbiter.EventAttended, "webinar", t0.Add(h)),
		{At: t0.Add(10 * h), Type: arbiter.EventNoShow, Channel: arbiter.MSLMeeting, ActionID: "msl", Purpose: arbiter.Medical},
	}}
	st.Touches.Touches = []contact.Touch{sent("webinar", t0), sent("video", t0.Add(2*h)), sent("email", t0.Add(3*h))}
	p := progress(j, st, t0.Add(11*h), false, "")
	if p.Status != Active || p.Step != 3 || p.OffRamp != nil {
		t.Errorf("after a missed MSL meeting: %v at step %d (off-ramp %v), want active at the MSL step, no off-ramp", p.Status, p.Step, p.OffRamp)
	}
	// Its own send marks the medical step done.
	st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: t0.Add(12 * h), Channel: arbiter.MSLMeeting, Purpose: arbiter.Medical,
		ActionID: "msl", State: contact.Sent})
	if p := progress(j, st, t0.Add(13*h), false, ""); p.Status != Completed {
		t.Errorf("after the MSL meeting: %v, want completed", p.Status)
	}
}
