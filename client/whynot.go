package client

import (
	"context"
	"time"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// WhyNotAnswer is every reason an action may not go to a recipient at a
// time (WhyNot).
type WhyNotAnswer struct {
	Allowed bool `json:"allowed"`
	// Blocks are every gate's, each with its detail and, where it clears
	// by itself, when.
	Blocks []Suppression `json:"blocks,omitempty"`
	At     time.Time     `json:"at"`
	// ClearsAt is the latest of the blocks' clear times: the earliest the
	// action could be allowed; zero when a block does not clear by
	// itself.
	ClearsAt           time.Time `json:"clears_at,omitzero"`
	DefinitionsVersion string    `json:"definitions_version"`
	// AsOfDecisionID, for a past time, is the logged decision whose
	// receipt stands for what the server knew of the recipient then (the
	// consent is the ledger as it stood at that time).
	AsOfDecisionID string `json:"as_of_decision_id,omitempty"`
}

// WhyNot asks why action may not go to the recipient at at (zero: now;
// a past time: as the server knew it then, from the decision log).
func (c *Client) WhyNot(ctx context.Context, recipientID, actionID string, at time.Time) (*WhyNotAnswer, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.decision.WhyNot(ctx, &nbapb.WhyNotRequest{HcpId: recipientID, ActionId: actionID, At: timeToPB(at)})
	if err != nil {
		return nil, err
	}
	out := &WhyNotAnswer{Allowed: resp.GetAllowed(), At: timeFromPB(resp.GetAt()), ClearsAt: timeFromPB(resp.GetClearsAt()),
		DefinitionsVersion: resp.GetDefinitionsVersion(), AsOfDecisionID: resp.GetAsOfDecisionId()}
	for _, b := range resp.GetBlocks() {
		out.Blocks = append(out.Blocks, Suppression{ActionID: b.GetActionId(), Reason: suppressionReasonFromPB(b.GetReason()),
			Detail: b.GetDetail(), ClearsAt: timeFromPB(b.GetClearsAt())})
	}
	return out, nil
}
