package decision

import (
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/rules"
)

// Journey reasons.
const (
	// JourneyWait: the candidate is a journey step that is not due yet
	// (its wait has not run, it waits for an event, it comes after the
	// recipient's current step, or an operator paused the journey).
	// ClearsAt is when it is due, where that is known.
	JourneyWait Reason = "journey_wait"
	// JourneyLeft: the recipient's run of the journey ended: they left by
	// an off-ramp (they unsubscribed, their engagement fell), an operator
	// moved them out, they reached the goal or it ran out. Its steps rest
	// for the journey's maximum duration, until they may go through it
	// again: never more of the same.
	JourneyLeft Reason = "journey"
)

// journeyGate holds back the journey steps that are not due for the
// recipient (package rules, journey.go). A journey never lets a candidate
// past another gate: its due step is preferred by its score, after every
// gate has let it through (journeyFactor).
type journeyGate struct{}

func (journeyGate) Reasons() []Reason { return []Reason{JourneyWait, JourneyLeft} }

func (journeyGate) Check(in *GateInput, b *Block) bool {
	if len(in.journeys) == 0 {
		return false
	}
	for _, ref := range in.steps[in.Action.Index] {
		p := &in.journeys[ref.Journey]
		if !p.Governs(in.Action) {
			continue
		}
		holds, until := p.Holds(ref.Step, in.At)
		if !holds {
			continue
		}
		reason := JourneyWait
		if p.Status == rules.Exited || p.Status == rules.Completed || p.Status == rules.Expired {
			reason = JourneyLeft
		}
		*b = Block{Reason: reason, ClearsAt: until, Detail: detail(in, func() string { return journeyHold(p, ref.Step, in.At) })}
		return true
	}
	return false
}

// journeyHold says why a journey holds step k back.
func journeyHold(p *rules.Progress, k int, at time.Time) string {
	j := p.Journey
	where := fmt.Sprintf("step %d of '%s' (%s)", k+1, j.Name, j.Steps[k].Description)
	switch {
	case p.Status == rules.Exited && p.OffRamp != nil:
		return fmt.Sprintf("they left '%s': %s", j.Name, p.OffRamp.Description)
	case p.Status == rules.Exited:
		return fmt.Sprintf("an operator moved them out of '%s'", j.Name)
	case p.Status == rules.Completed:
		return fmt.Sprintf("they completed '%s' on %s; it may start again from %s", j.Name,
			p.EndedAt.UTC().Format(time.DateOnly), p.EndedAt.Add(j.MaxDuration).UTC().Format(time.DateOnly))
	case p.Status == rules.Expired:
		return fmt.Sprintf("'%s' ran out for them on %s", j.Name, p.EndedAt.UTC().Format(time.DateOnly))
	case p.Paused:
		return fmt.Sprintf("%s: '%s' is paused", where, j.Name)
	case p.Status == rules.Eligible || k > p.Step:
		return fmt.Sprintf("%s comes after step %d (%s)", where, p.Step+1, j.Steps[p.Step].Description)
	case !p.DueAt.IsZero():
		return fmt.Sprintf("%s is due in %s", where, roundDuration(p.DueAt.Sub(at)))
	case p.WaitingFor != arbiter.EventUnspecified:
		return fmt.Sprintf("%s waits for them to be %s", where, humanize(p.WaitingFor.String()))
	}
	return where + " waits for a date their profile does not hold"
}

// journeyFactor is the product of the boosts of the journeys whose due
// step, or whose off-ramp's offer, the candidate is (1: none).
func journeyFactor(in *GateInput) float64 {
	f := 1.0
	for _, ref := range in.steps[in.Action.Index] {
		if p := &in.journeys[ref.Journey]; p.Due(ref.Step, in.At) && p.Governs(in.Action) {
			f *= p.Journey.Boost
		}
	}
	for i := range in.journeys {
		if p := &in.journeys[i]; p.Offers(in.Action.ID, in.At) && p.Governs(in.Action) {
			f *= p.Journey.Boost
		}
	}
	return f
}

// journeyStepOf is the journey step a recommended candidate is, for its
// reason: the first journey whose due step, or off-ramp offer, it is (nil:
// none).
func journeyStepOf(in *GateInput) *JourneyStep {
	for _, ref := range in.steps[in.Action.Index] {
		if p := &in.journeys[ref.Journey]; p.Due(ref.Step, in.At) && p.Governs(in.Action) {
			return &JourneyStep{Journey: p.Journey, Step: ref.Step, Progress: *p}
		}
	}
	for i := range in.journeys {
		if p := &in.journeys[i]; p.Offers(in.Action.ID, in.At) && p.Governs(in.Action) {
			return &JourneyStep{Journey: p.Journey, Step: -1, Progress: *p}
		}
	}
	return nil
}

// JourneyStep is the journey step a recommendation is: the step that is
// due, or (Step -1) an off-ramp's offer.
type JourneyStep struct {
	Journey  *rules.Journey
	Step     int
	Progress rules.Progress
}

// Sentence is the step in a rep's words: "step 3 of 'Glucanor launch':
// follow-up email with the trial summary, two days after the webinar".
func (js *JourneyStep) Sentence() string {
	j := js.Journey
	switch {
	case js.Step < 0 && js.Progress.OffRamp != nil:
		return fmt.Sprintf("they left '%s': %s", j.Name, js.Progress.OffRamp.Description)
	case js.Step < 0:
		return fmt.Sprintf("they left '%s'", j.Name)
	case js.Progress.Status == rules.Eligible:
		return fmt.Sprintf("starts '%s' (step 1 of %d): %s", j.Name, len(j.Steps), j.Steps[0].Description)
	case js.Progress.OffRamp != nil:
		return fmt.Sprintf("step %d of '%s': %s (%s)", js.Step+1, j.Name, j.Steps[js.Step].Description, js.Progress.OffRamp.Description)
	}
	return fmt.Sprintf("step %d of '%s': %s", js.Step+1, j.Name, j.Steps[js.Step].Description)
}
