package server

import (
	"context"
	"time"

	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Explainer asks every gate about candidates (decision.Engine.CheckAll,
// through the server program's follower), for WhyNot.
type Explainer interface {
	CheckAll(ctx context.Context, req decision.Request) ([]decision.CandidateCheck, string, error)
}

// WithExplainer serves WhyNot with x; without it WhyNot is Unimplemented.
func WithExplainer(x Explainer) Option { return func(s *Server) { s.explainer = x } }

// pastTolerance is how far before the server's clock a WhyNot time may be
// and still count as now (clocks of callers and servers differ a little).
const pastTolerance = time.Minute

// WhyNot says every reason an action may not go to a recipient at a time.
func (s *Server) WhyNot(ctx context.Context, req *nbapb.WhyNotRequest) (*nbapb.WhyNotResponse, error) {
	if s.explainer == nil {
		return s.UnimplementedDecisionServiceServer.WhyNot(ctx, req)
	}
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	c.id("action_id", req.GetActionId(), true)
	at := time.Now()
	if t := req.GetAt(); t != nil {
		switch {
		case t.CheckValid() != nil:
			c.Add("at", "not a valid timestamp")
		case t.AsTime().Before(at.Add(-pastTolerance)):
			c.Add("at", "is in the past: what the server knew then needs the decision log; give now or a time ahead")
		default:
			at = t.AsTime()
		}
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decision.Request{HCPID: req.GetHcpId(), Candidates: []string{req.GetActionId()}, At: at, Explain: true}
	callerFromIdentity(ctx, &dreq)
	checks, version, err := s.explainer.CheckAll(ctx, dreq)
	if err != nil {
		// The one candidate is the request's action.
		return nil, toStatus(ctx, s.log, renameFields("candidates[0]", "action_id", err))
	}
	out := &nbapb.WhyNotResponse{At: ts(at), DefinitionsVersion: version, Allowed: true}
	var clears time.Time
	never := false
	for _, ch := range checks {
		for _, b := range ch.Blocks {
			out.Allowed = false
			out.Blocks = append(out.Blocks, &nbapb.Suppression{ActionId: ch.ActionID, Reason: reasonCode(b.Reason),
				Detail: b.Detail, ClearsAt: ts(b.ClearsAt)})
			if b.ClearsAt.IsZero() {
				never = true
			} else if b.ClearsAt.After(clears) {
				clears = b.ClearsAt
			}
		}
	}
	if !out.Allowed && !never {
		out.ClearsAt = ts(clears)
	}
	return out, nil
}
