package decision

import "github.com/arbiter-nba/arbiter/scoring"

// coverageGate holds back the channels the model does not score: their
// actions could never be ranked fairly.
type coverageGate struct{ model *scoring.Model }

func (coverageGate) Reasons() []Reason { return []Reason{NotEligible} }

func (g coverageGate) Check(in *GateInput, b *Block) bool {
	if g.model.Scores(in.Action.Channel) {
		return false
	}
	*b = Block{Reason: NotEligible, NotApplicable: true,
		Detail: detail(in, func() string { return "the model does not score " + in.Action.Channel.String() })}
	return true
}
