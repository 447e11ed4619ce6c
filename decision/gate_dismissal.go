package decision

import (
	"strconv"
	"time"
)

// Dismissed: a rep dismissed a suggestion of the action as not relevant to
// the recipient (SuggestionFeedback) less than DismissalPeriod ago. It
// clears DismissalPeriod after the dismissal.
const Dismissed Reason = "dismissed"

// DismissalPeriod is how long a rep's dismissal of a suggested action as
// not relevant holds that action back for that recipient. A later
// dismissal of the same action starts it again.
const DismissalPeriod = 30 * 24 * time.Hour

// dismissalGate holds back an action a rep dismissed as not relevant to
// the recipient, for DismissalPeriod from the dismissal, in every
// decision and check (a rep's "not relevant" is about the recipient, not
// about the rep tool). The dismissals are part of the recipient's state
// (recipient.State.Dismissals, read with the profile and kept in the
// receipt), so a replay sees them as the decision did. A critical
// service message passes, as it passes the contact policy.
type dismissalGate struct{}

func (dismissalGate) Reasons() []Reason { return []Reason{Dismissed} }

func (dismissalGate) Check(in *GateInput, b *Block) bool {
	ds := in.State.Dismissals
	if len(ds) == 0 || in.Action.Critical {
		return false
	}
	for i := range ds {
		d := &ds[i]
		if d.ActionID != in.Action.ID {
			continue
		}
		clears := d.At.Add(DismissalPeriod).UTC()
		if !in.At.Before(clears) {
			return false
		}
		*b = Block{Reason: Dismissed, ClearsAt: clears, Detail: detail(in, func() string {
			return "a rep dismissed it as not relevant to this recipient on " + d.At.UTC().Format("Mon 2 Jan 2006") +
				"; held back for " + strconv.Itoa(int(DismissalPeriod/(24*time.Hour))) + " days"
		})}
		return true
	}
	return false
}
