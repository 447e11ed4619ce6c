package rules

import (
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/recipient"
)

// A Journey is a sequence of steps a recipient goes through ("webinar
// invitation, then the on-demand video a day after they attend, then the
// trial summary by email two days later, then an MSL meeting"), with
// waits, a goal that ends it, off-ramps and a maximum duration.
//
// A recipient's progress is never stored: it is derived, at each decision,
// from what the recipient's touch ledger and recent events say happened
// (Progress), plus an operator's override, if any. So an event replayed
// changes nothing (it is one event, deduplicated where it is stored), and
// servers applying events concurrently reach the state a sequential
// application would: progress depends on the set of events, ordered by when
// they happened, not on the order they arrived in.
//
// What a decision does with a recipient's progress (package decision): the
// due step's actions are preferred (their scores multiplied by Boost, and
// the step named in the reason); an action of a step that is not yet due
// is held back (JOURNEY_WAIT, with when it clears where that is known); the
// actions of a journey the recipient left by an off-ramp are held back for
// the journey's maximum duration, and the off-ramp's offer preferred. A
// journey never lets an action past a gate.
type Journey struct {
	ID string
	// Name is the journey's name in reasons: "step 3 of 'Glucanor launch'".
	Name  string
	Steps []Step
	// MaxDuration ends the journey that long after the recipient entered.
	MaxDuration time.Duration
	// Goal ends the journey, reached: an event of one of these types (on
	// GoalTopic, when set).
	Goal      []arbiter.EventType
	GoalTopic string
	OffRamps  []OffRamp
	// Boost multiplies the due step's candidates' scores (> 1).
	Boost float64
	// Promotional: a step has a promotional action. Medical signals (MSL
	// meetings, events on medical content) then never move the journey:
	// Progress ignores them, and its entry condition cannot read them (the
	// medical/commercial firewall).
	Promotional bool
	// Index is the journey's place in Set.Journeys (the engine's Entered
	// bit).
	Index int
}

// Step is one step of a journey.
type Step struct {
	ID string
	// Description says what the step is, in a rep's words: "follow-up
	// email with the trial summary, two days after the webinar".
	Description string
	// Actions are the catalog actions that make the step (any one of
	// them, as ranked): its candidate set.
	Actions []string
	// The wait before the step is due, from its anchor: the time the
	// previous step was done, or, with WaitEvent, the first event of that
	// type after it ("attended the webinar"). With WaitAttr, the step is
	// due at a time the profile holds (an attribute in Unix seconds, such
	// as an appointment) plus WaitFor, which may then be negative ("one
	// hour before the appointment").
	WaitEvent arbiter.EventType
	WaitFor   time.Duration
	WaitAttr  string
	// Medical: every action of the step is medical.
	Medical bool
}

// OffRamp takes a recipient out of a journey's sequence: on an event of
// one of its types after they entered, or when their persona becomes
// Persona. To is the step it moves them to (the step is then due at once);
// -1 ends the journey for them, and its Offer actions are preferred instead
// ("they unsubscribed: the preference centre, never more of the same").
type OffRamp struct {
	ID          string
	Description string
	On          []arbiter.EventType
	Persona     string
	To          int
	Offer       []string
}

// Status is where a recipient is in a journey.
type Status uint8

const (
	// NotEntered: the recipient has not entered, and its entry condition
	// does not hold.
	NotEntered Status = iota
	// Eligible: not entered, and the entry condition holds: the first
	// step is due.
	Eligible
	// Active: in the journey, at Step.
	Active
	// Completed: the goal was reached, or every step done.
	Completed
	// Exited: left by an off-ramp, or moved out by an operator.
	Exited
	// Expired: the maximum duration ran out.
	Expired
)

var statusNames = [...]string{"not_entered", "eligible", "active", "completed", "exited", "expired"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "invalid"
}

// Progress is one recipient's place in one journey at a decision's time.
type Progress struct {
	Journey *Journey
	Status  Status
	// Step is the step that is next (Active, Eligible: 0).
	Step int
	// DueAt is when Step is due (zero while it waits for an event,
	// WaitingFor).
	DueAt      time.Time
	WaitingFor arbiter.EventType
	EnteredAt  time.Time
	// EndedAt is when it completed, exited or expired.
	EndedAt time.Time
	// Goal: it completed by reaching the journey's goal.
	Goal bool
	// OffRamp is the off-ramp that ended it or moved it (nil: none).
	OffRamp *OffRamp
	// Operator is the principal of an override that placed it (empty:
	// none).
	Operator string
	// Paused: an operator paused the journey; no step is due.
	Paused bool
}

// Due reports whether step k is the one due at t.
func (p *Progress) Due(k int, t time.Time) bool {
	if p.Paused {
		return false
	}
	switch p.Status {
	case Eligible:
		return k == 0 && !p.DueAt.IsZero() && !p.DueAt.After(t)
	case Active:
		return k == p.Step && !p.DueAt.IsZero() && !p.DueAt.After(t)
	}
	return false
}

// Holds reports whether the journey holds back the actions of step k at t
// (the step is not due; or the recipient's run of the journey ended, by an
// off-ramp, the goal or its maximum duration, and may not start again
// yet), and until when (zero: not known, it waits for an event, or an
// operator).
func (p *Progress) Holds(k int, t time.Time) (bool, time.Time) {
	switch p.Status {
	case Active:
		if p.Paused {
			return true, time.Time{}
		}
		switch {
		case k > p.Step:
			return true, time.Time{}
		case k == p.Step && (p.DueAt.IsZero() || p.DueAt.After(t)):
			return true, p.DueAt
		}
	case Exited, Completed, Expired:
		// Between runs a journey's steps rest, until the recipient may
		// go through it again: never more of the same after an
		// off-ramp, nothing repeated after the goal.
		if until := p.EndedAt.Add(p.Journey.MaxDuration); until.After(t) {
			return true, until
		}
	case Eligible:
		// Not in it yet: its first step is preferred once due, and
		// nothing else is held back (the entry condition, which may read
		// commercial signals, must not hold back medical content).
		if k == 0 && p.Paused {
			return true, time.Time{}
		}
		if k == 0 && (p.DueAt.IsZero() || p.DueAt.After(t)) {
			return true, p.DueAt
		}
	}
	return false, time.Time{}
}

// Governs reports whether the journey may prefer or hold back action a: a
// journey with promotional steps never moves medical content either way
// (the medical/commercial firewall: a medical decision must not depend on
// commercial activity). Its medical step is then the hand-off point: the
// journey notes it done when it is sent; the medical team decides when.
func (p *Progress) Governs(a *catalog.Action) bool {
	return !p.Journey.Promotional || a.Purpose != arbiter.Medical
}

// Offers reports whether an off-ramp's offer prefers action id at t.
func (p *Progress) Offers(id string, t time.Time) bool {
	return p.Status == Exited && p.OffRamp != nil && p.EndedAt.Add(p.Journey.MaxDuration).After(t) &&
		slices.Contains(p.OffRamp.Offer, id)
}

// mark is one thing that happened, for Progress: an event, or a sent touch.
type mark struct {
	at     time.Time
	typ    arbiter.EventType // EventSent for a touch
	action string
	topic  string
	// medical: a medical signal a promotional journey sees only because
	// it is about one of its medical steps: its send (a touch) may mark
	// that step done, nothing else (no off-ramp, no wait, no goal).
	medical bool
}

// Buffer is scratch space for Progress, reused across decisions.
type Buffer struct{ marks []mark }

// Progress derives the recipient's progress in j at t from st (its touch
// ledger, its recent events, an operator's override of this journey in
// st.JourneyOverrides), its persona, and whether j's entry condition holds
// (entry).
//
// A recipient goes through a journey again once its maximum duration has
// passed since they left it (completed, expired or exited): what happened
// after that starts a new run ("a medication reminder a day").
func (j *Journey) Progress(st *recipient.State, cat *catalog.Catalog, t time.Time, entry bool, persona string, buf *Buffer) Progress {
	buf.marks = j.marks(st, cat, t, buf.marks[:0])
	marks := buf.marks
	var ov *recipient.JourneyOverride
	for i := range st.JourneyOverrides {
		if st.JourneyOverrides[i].Journey == j.ID {
			ov = &st.JourneyOverrides[i]
		}
	}
	for {
		p := j.run(st, marks, t, entry, persona, ov)
		if p.Status != Completed && p.Status != Expired && p.Status != Exited || t.Sub(p.EndedAt) <= j.MaxDuration {
			return p
		}
		// A new run, from what happened after this one ended.
		for len(marks) > 0 && !marks[0].at.After(p.EndedAt) {
			marks = marks[1:]
		}
		ov = nil
	}
}

// run derives one run of the journey from marks (in the order they
// happened), from an operator's override if any.
func (j *Journey) run(st *recipient.State, marks []mark, t time.Time, entry bool, persona string, ov *recipient.JourneyOverride) Progress {
	p := Progress{Journey: j}
	var anchor, waited time.Time // the current step's anchor, and its wait event's time
	dueNow := false              // an off-ramp or an operator made the step due at anchor
	start := 0
	if k := j.stepIndex(ov); ov != nil && !ov.At.After(t) && k >= -1 {
		p.Operator = ov.Principal
		if k < 0 {
			p.Status, p.EndedAt = Exited, ov.At
			return p
		}
		p.Status, p.Step, p.EnteredAt, anchor, dueNow = Active, k, ov.At, ov.At, true
		for start < len(marks) && !marks[start].at.After(ov.At) {
			start++
		}
	}
	for _, m := range marks[start:] {
		if p.Status == Active && m.at.Sub(p.EnteredAt) > j.MaxDuration {
			p.Status, p.EndedAt = Expired, p.EnteredAt.Add(j.MaxDuration)
			break
		}
		switch p.Status {
		case NotEntered:
			if !m.medical && !m.typ.Undone() && slices.Contains(j.Steps[0].Actions, m.action) {
				p.Status, p.EnteredAt = Active, m.at
				p.Step, anchor, waited, dueNow = 1, m.at, time.Time{}, false
				if len(j.Steps) == 1 {
					p.Status, p.EndedAt = Completed, m.at
				}
			}
		case Active:
			if m.medical {
				// A medical signal in a promotional journey: the send
				// of a medical step marks it done; it moves nothing else.
				if k := j.stepOf(m.action, p.Step); k >= 0 && j.Steps[k].Medical && m.typ.IsTouch() {
					p.Step, anchor, waited, dueNow = k+1, m.at, time.Time{}, false
					if p.Step == len(j.Steps) {
						p.Status, p.EndedAt = Completed, m.at
					}
				}
				break
			}
			if slices.Contains(j.Goal, m.typ) && (j.GoalTopic == "" || m.topic == j.GoalTopic) {
				p.Status, p.EndedAt, p.Goal = Completed, m.at, true
				break
			}
			if r := j.offRamp(m.typ); r != nil {
				p.OffRamp = r
				if r.To < 0 {
					p.Status, p.EndedAt = Exited, m.at
					break
				}
				p.Step, anchor, waited, dueNow = r.To, m.at, time.Time{}, true
				continue
			}
			if !m.typ.Undone() && m.action != "" {
				if k := j.stepOf(m.action, p.Step); k >= 0 {
					// Step k was done (a step skipped ahead counts too).
					p.Step, anchor, waited, dueNow = k+1, m.at, time.Time{}, false
					if p.Step == len(j.Steps) {
						p.Status, p.EndedAt = Completed, m.at
						break
					}
					continue
				}
			}
			if w := j.Steps[p.Step].WaitEvent; w != 0 && m.typ == w && waited.IsZero() {
				waited = m.at
			}
		}
		if p.Status != NotEntered && p.Status != Active {
			break
		}
	}
	switch p.Status {
	case NotEntered:
		if entry {
			p.Status, p.DueAt = Eligible, t
			if s := &j.Steps[0]; s.WaitAttr != "" {
				// The first step at a time the profile holds ("an hour
				// before the appointment").
				p.DueAt = time.Time{}
				if v, ok := st.Profile.Attributes[s.WaitAttr]; ok && v > 0 {
					p.DueAt = time.Unix(int64(v), 0).UTC().Add(s.WaitFor)
				}
			}
		}
	case Active:
		if t.Sub(p.EnteredAt) > j.MaxDuration {
			p.Status, p.EndedAt = Expired, p.EnteredAt.Add(j.MaxDuration)
			break
		}
		if r := j.personaRamp(persona); r != nil {
			// Low engagement: the preference centre, not more of the
			// same. A persona is worked out at the decision, so is this.
			p.OffRamp = r
			if r.To < 0 {
				p.Status, p.EndedAt = Exited, t
				break
			}
			if r.To != p.Step {
				p.Step, p.DueAt = r.To, t
				break
			}
		}
		s := &j.Steps[p.Step]
		switch {
		case dueNow:
			p.DueAt = anchor
		case s.WaitAttr != "":
			if v, ok := st.Profile.Attributes[s.WaitAttr]; ok && v > 0 {
				p.DueAt = time.Unix(int64(v), 0).UTC().Add(s.WaitFor)
			} // else: not known, waits
		case s.WaitEvent != 0:
			if waited.IsZero() {
				p.WaitingFor = s.WaitEvent
			} else {
				p.DueAt = waited.Add(s.WaitFor)
			}
		default:
			p.DueAt = anchor.Add(s.WaitFor)
		}
	}
	return p
}

// marks lists what happened to the recipient up to t that j can see, in
// the order it happened: sent touches of the ledger, and recent events.
// A promotional journey sees no medical signal.
func (j *Journey) marks(st *recipient.State, cat *catalog.Catalog, t time.Time, out []mark) []mark {
	for i := range st.Touches.Touches {
		tc := &st.Touches.Touches[i]
		if tc.State != contact.Sent || tc.ActionID == "" || tc.At.After(t) {
			continue
		}
		medical := j.Promotional && (tc.Purpose == arbiter.Medical || tc.Channel == arbiter.MSLMeeting)
		if medical && !j.medicalStep(tc.ActionID) {
			continue
		}
		out = append(out, mark{at: tc.At, typ: arbiter.EventSent, action: tc.ActionID, topic: tc.Topic, medical: medical})
	}
	for i := range st.Recent {
		e := &st.Recent[i]
		if e.At.After(t) {
			continue
		}
		medical := j.Promotional && medicalEvent(e, cat)
		if medical && !j.medicalStep(e.ActionID) {
			continue
		}
		if e.ActionID != "" && !j.has(e.ActionID) && !slices.Contains(j.Goal, e.Type) {
			// An event on other content does not move the journey (an
			// attended webinar on another product); one on no content
			// (an unsubscribe) and a goal do.
			continue
		}
		out = append(out, mark{at: e.At, typ: e.Type, action: e.ActionID, topic: e.Topic, medical: medical})
	}
	slices.SortStableFunc(out, func(a, b mark) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		// The same instant: the send before what followed it.
		return int(a.typ) - int(b.typ)
	})
	return out
}

// medicalEvent reports whether e is a medical signal: an MSL meeting, an
// event on medical content, or on an action the catalog does not know.
func medicalEvent(e *recipient.RecentEvent, cat *catalog.Catalog) bool {
	if e.Type == arbiter.EventMSLMeeting || e.Channel == arbiter.MSLMeeting || e.Purpose == arbiter.Medical {
		return true
	}
	if e.ActionID != "" && cat != nil {
		i, ok := cat.Lookup(e.ActionID)
		return !ok || cat.Actions[i].Purpose == arbiter.Medical
	}
	return false
}

// stepIndex is the step an override moves to: its index, -1 for out of
// the journey, -2 for a step the journey does not have (or no override).
func (j *Journey) stepIndex(ov *recipient.JourneyOverride) int {
	if ov == nil {
		return -2
	}
	if ov.Step == "" {
		return -1
	}
	for k := range j.Steps {
		if j.Steps[k].ID == ov.Step {
			return k
		}
	}
	return -2
}

// has reports whether action id is one of j's steps' or offers'.
func (j *Journey) has(id string) bool {
	if j.stepOf(id, 0) >= 0 {
		return true
	}
	for i := range j.OffRamps {
		if slices.Contains(j.OffRamps[i].Offer, id) {
			return true
		}
	}
	return false
}

// medicalStep reports whether action id makes one of a promotional
// journey's medical steps (steps of medical actions only, which Parse lets
// stand only where no promotional step follows): its own step's send may
// count, as it can make nothing promotional due.
func (j *Journey) medicalStep(id string) bool {
	k := j.stepOf(id, 0)
	return k >= 0 && j.Steps[k].Medical
}

// stepOf is the step, from `from` on, that action id makes (-1: none).
func (j *Journey) stepOf(id string, from int) int {
	for k := from; k < len(j.Steps); k++ {
		if slices.Contains(j.Steps[k].Actions, id) {
			return k
		}
	}
	return -1
}

func (j *Journey) offRamp(t arbiter.EventType) *OffRamp {
	for i := range j.OffRamps {
		if slices.Contains(j.OffRamps[i].On, t) {
			return &j.OffRamps[i]
		}
	}
	return nil
}

func (j *Journey) personaRamp(persona string) *OffRamp {
	if persona == "" {
		return nil
	}
	for i := range j.OffRamps {
		if j.OffRamps[i].Persona == persona {
			return &j.OffRamps[i]
		}
	}
	return nil
}

// StepRef names a step of a journey: what an action is part of.
type StepRef struct {
	Journey, Step int
}
