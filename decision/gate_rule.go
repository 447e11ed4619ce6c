package decision

import (
	"github.com/arbiter-nba/arbiter/rules"
)

// RuleBlock: a behaviour rule holds the candidate back (a suppression, or
// another rule that requires candidates it does not match). The detail
// says which rule and why, in its own words.
const RuleBlock Reason = "rule"

// ruleGate applies the rules that hold for the decision (package rules;
// evaluated once per decision, before the gates): a suppression blocks
// the candidates its selector matches until it clears, a requirement the
// candidates it does not match. Boosts and demotions are not gates: they
// move the score (Decide).
type ruleGate struct{}

func (ruleGate) Reasons() []Reason { return []Reason{RuleBlock} }

func (ruleGate) Check(in *GateInput, b *Block) bool {
	for i := range in.applied {
		ap := &in.applied[i]
		switch ap.Rule.Effect {
		case rules.Suppress:
			if ap.Matches(in.Action) {
				*b = Block{Reason: RuleBlock, ClearsAt: ap.ClearsAt, Detail: detail(in, func() string {
					if ap.Failed {
						return "rule " + ap.Rule.ID + " could not be evaluated, so what it suppresses is held back"
					}
					return ap.Rule.Description + " (rule " + ap.Rule.ID + ")"
				})}
				return true
			}
		case rules.Require:
			if !ap.Matches(in.Action) {
				*b = Block{Reason: RuleBlock, Detail: detail(in, func() string {
					return "only what rule " + ap.Rule.ID + " selects applies now: " + ap.Rule.Description
				})}
				return true
			}
		}
	}
	return false
}

// ruleFactor is the product of the factors of the boosts and demotions
// that match a (1: none).
func ruleFactor(applied []rules.Applied, in *GateInput) float64 {
	f := 1.0
	for i := range applied {
		ap := &applied[i]
		if (ap.Rule.Effect == rules.Boost || ap.Rule.Effect == rules.Demote) && ap.Matches(in.Action) {
			f *= ap.Rule.Factor
		}
	}
	return f
}
