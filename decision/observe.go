package decision

import "context"

// Phase is a step of a decision, as an Observer sees it.
type Phase uint8

const (
	// PhaseLoad loads the recipient's state: one storage round trip.
	PhaseLoad Phase = iota + 1
	// PhaseGates works out what the behaviour rules and journeys say and
	// takes every candidate through the gates (channel, MLR, audience,
	// consent, contact policy, rules, journeys).
	PhaseGates
	// PhaseScoring scores and ranks the candidates the gates let through.
	PhaseScoring
)

// String names the phase: load, gates or scoring.
func (p Phase) String() string {
	switch p {
	case PhaseLoad:
		return "load"
	case PhaseGates:
		return "gates"
	case PhaseScoring:
		return "scoring"
	}
	return "unknown"
}

// PhaseEnd is what a phase ends with, for an Observer: counts, a code and
// an error, never who the decision is about.
type PhaseEnd struct {
	// Err is the phase's error (PhaseLoad's, wrapping a storage error or
	// arbiter.ErrNotFound; nil: none). Its text may name the recipient:
	// an Observer tells its kind (errors.Is), never its text.
	Err error
	// Candidates is how many candidates the phase took in (PhaseGates,
	// PhaseScoring); Suppressed how many the gates held back (PhaseGates),
	// and Recommendations how many the scoring returned (PhaseScoring).
	Candidates, Suppressed, Recommendations int
	// Persona is the persona code the rules gave the recipient (PhaseGates;
	// empty: none).
	Persona string
}

// Observer is told when each phase of a decision starts and ends: the
// server's tracing gives each phase a span (server.PhaseTracer). It is an
// Engine's option (WithObserver); without one, the engine calls nothing
// and allocates nothing more per decision (BenchmarkDecide). An Observer
// must be safe for concurrent use.
type Observer interface {
	// StartPhase is called as phase p of a decision starts, with the
	// decision's context; the context it returns is what the phase runs
	// with (PhaseLoad's is the one given to the Loader) and what EndPhase
	// is given.
	StartPhase(ctx context.Context, p Phase) context.Context
	// EndPhase is called when the phase ends, with the context StartPhase
	// returned.
	EndPhase(ctx context.Context, p Phase, end PhaseEnd)
}

// WithObserver has o told of the phases of every decision (nil: none, the
// default).
func WithObserver(o Observer) Option { return func(e *Engine) { e.observer = o } }
