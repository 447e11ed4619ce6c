package decision

import (
	"time"

	"github.com/arbiter-nba/arbiter/catalog"
)

const (
	// ContentNotApproved: the content's MLR approval is missing, pending,
	// rejected or withdrawn.
	ContentNotApproved Reason = "content_not_approved"
	// ContentExpired: the approval is not valid at the decision time (not
	// yet, or no longer) or not for the recipient's market.
	ContentExpired Reason = "content_expired"
	// NotEligible: the action is not for this recipient (audience,
	// specialty, market), or the model does not score its channel.
	NotEligible Reason = "not_eligible"
)

// eligibilityGate applies the catalog's eligibility: MLR approval valid at
// the decision time for the recipient's market, audience and specialty.
type eligibilityGate struct{}

func (eligibilityGate) Reasons() []Reason {
	return []Reason{ContentNotApproved, ContentExpired, NotEligible}
}

func (eligibilityGate) Check(in *GateInput, b *Block) bool {
	a := in.Action
	why := a.Check(in.Recipient, in.At)
	if why == catalog.Eligible {
		return false
	}
	b.Detail = detail(in, func() string { return a.Explain(why, in.Recipient) })
	switch why {
	case catalog.ContentNotApproved:
		b.Reason = ContentNotApproved
	case catalog.ContentExpired:
		b.Reason = ContentExpired
		// An approval that starts later clears then; an expired one never.
		if from := a.Approval.ValidFrom; in.At.Before(from) {
			b.ClearsAt = from.UTC().Truncate(time.Millisecond)
		}
	default:
		b.Reason, b.NotApplicable = NotEligible, true
	}
	return true
}
