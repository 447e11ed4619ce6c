package decision

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/rules"
)

// JourneyResult is one recipient's progress in every journey of the
// engine's rules, as a decision at At would see it.
type JourneyResult struct {
	At       time.Time
	Persona  string
	Journeys []rules.Progress
	// State is the recipient's state the progress was derived from (for
	// the KPIs' field-interaction times).
	State *recipient.State
}

// Journeys returns the recipient's progress in each journey (req.HCPID,
// req.At, req.Territories and req.Caller are used). It loads the state in
// one round trip, as Decide does, and evaluates the rules the same way.
func (e *Engine) Journeys(ctx context.Context, req Request) (*JourneyResult, error) {
	req.Candidates, req.CandidateSet = nil, ""
	s := e.scratch.Get().(*scratch)
	defer e.scratch.Put(s)
	_, at, now, st, err := e.load(ctx, &req, s)
	if err != nil {
		return nil, fmt.Errorf("journeys: %w", err)
	}
	in := GateInput{State: st, Request: &req, At: at, Now: now}
	persona := e.evaluate(&in, &s.jbuf, e.pausedNow())
	return &JourneyResult{At: at, Persona: persona, Journeys: slices.Clone(in.journeys), State: st}, nil
}

// Journey returns the journey of the engine's rules with the given id.
func (e *Engine) Journey(id string) (*rules.Journey, bool) {
	if e.rules == nil {
		return nil, false
	}
	for _, j := range e.rules.Journeys {
		if j.ID == id {
			return j, true
		}
	}
	return nil, false
}

// JourneySteps names, for an action, the journeys it is a step of (for the
// member index: a send of any of them makes the recipient a member).
func (e *Engine) JourneySteps(actionID string) []string {
	if e.rules == nil || len(e.rules.Journeys) == 0 {
		return nil
	}
	i, ok := e.catalog.Lookup(actionID)
	if !ok {
		return nil
	}
	var out []string
	for _, ref := range e.rules.ActionSteps[i] {
		out = append(out, e.rules.Journeys[ref.Journey].ID)
	}
	return out
}

// FirstStepAt names, for a profile's attributes, the journeys whose first
// step waits for a time the profile holds ("an hour before the
// appointment"), with that time (for the members index: a recipient is a
// member of such a journey from the profile's write, before any send).
func (e *Engine) FirstStepAt(attrs map[string]float64) map[string]time.Time {
	if e.rules == nil || len(attrs) == 0 {
		return nil
	}
	var out map[string]time.Time
	for _, j := range e.rules.Journeys {
		s := &j.Steps[0]
		if v, ok := attrs[s.WaitAttr]; ok && s.WaitAttr != "" && v > 0 {
			if out == nil {
				out = map[string]time.Time{}
			}
			out[j.ID] = time.Unix(int64(v), 0).UTC().Add(s.WaitFor)
		}
	}
	return out
}

// Describe says where a recipient stands in a journey, in words.
func Describe(p *rules.Progress, at time.Time) string {
	j := p.Journey
	switch p.Status {
	case rules.NotEntered:
		return "not in '" + j.Name + "'"
	case rules.Eligible:
		return fmt.Sprintf("may start '%s': step 1 (%s) is due", j.Name, j.Steps[0].Description)
	case rules.Completed:
		return fmt.Sprintf("completed '%s'", j.Name)
	case rules.Expired:
		return fmt.Sprintf("'%s' ran out (%s after they entered)", j.Name, roundDuration(j.MaxDuration))
	case rules.Exited:
		if p.OffRamp != nil {
			return fmt.Sprintf("left '%s': %s", j.Name, p.OffRamp.Description)
		}
		// Who did is in the progress (moved_by), for those allowed to
		// read it, not in words that travel with decisions.
		return fmt.Sprintf("an operator moved them out of '%s'", j.Name)
	}
	if p.Due(p.Step, at) {
		return fmt.Sprintf("step %d of '%s' is due: %s", p.Step+1, j.Name, j.Steps[p.Step].Description)
	}
	return journeyHold(p, p.Step, at)
}

// JourneyStats are a journey's KPIs over the members read.
type JourneyStats struct {
	Members, Entered, Active, Completed, Converted, Exited, Expired int64
	// AtStep and Dropped are per step: members whose next step it is,
	// and members who left (exited, expired) with it next.
	AtStep, Dropped []int64
	// FieldToEngagement are the times from a field interaction (a rep
	// visit, a remote visit, an MSL meeting) to the member's next
	// engagement, over the interactions followed by one; FieldInteractions
	// counts every interaction.
	FieldToEngagement []time.Duration
	FieldInteractions int64
}

// NewJourneyStats returns empty stats for j.
func NewJourneyStats(j *rules.Journey) *JourneyStats {
	return &JourneyStats{AtStep: make([]int64, len(j.Steps)), Dropped: make([]int64, len(j.Steps))}
}

// Add counts one member's progress p (its state st).
func (s *JourneyStats) Add(p *rules.Progress, st *recipient.State, at time.Time) {
	s.Members++
	if p.Status == rules.NotEntered || p.Status == rules.Eligible {
		return
	}
	s.Entered++
	step := min(p.Step, len(s.AtStep)-1)
	switch p.Status {
	case rules.Active:
		s.Active++
		s.AtStep[step]++
	case rules.Completed:
		s.Completed++
		if p.Goal {
			s.Converted++
		}
	case rules.Exited:
		s.Exited++
		s.Dropped[step]++
	case rules.Expired:
		s.Expired++
		s.Dropped[step]++
	}
	// Field interactions since they entered, and the engagement after each.
	for i := range st.Touches.Touches {
		t := &st.Touches.Touches[i]
		if !field(t.Channel) || t.At.Before(p.EnteredAt) || t.At.After(at) {
			continue
		}
		s.FieldInteractions++
		var next time.Time
		for k := range st.Recent {
			e := &st.Recent[k]
			if e.Type.Engagement() > 0 && !field(e.Channel) && e.At.After(t.At) && !e.At.After(at) && (next.IsZero() || e.At.Before(next)) {
				next = e.At
			}
		}
		if !next.IsZero() {
			s.FieldToEngagement = append(s.FieldToEngagement, next.Sub(t.At))
		}
	}
}

func field(c arbiter.Channel) bool {
	return c == arbiter.RepVisit || c == arbiter.RemoteVisit || c == arbiter.MSLMeeting
}

// Rates returns completed/entered and converted/entered (0 when none
// entered).
func (s *JourneyStats) Rates() (completion, conversion float64) {
	if s.Entered == 0 {
		return 0, 0
	}
	return float64(s.Completed) / float64(s.Entered), float64(s.Converted) / float64(s.Entered)
}

// FieldPercentile returns the q-th quantile (0..1) of FieldToEngagement
// (0 when empty).
func (s *JourneyStats) FieldPercentile(q float64) time.Duration {
	if len(s.FieldToEngagement) == 0 {
		return 0
	}
	d := slices.Clone(s.FieldToEngagement)
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}
