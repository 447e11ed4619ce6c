package server

import (
	"context"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// ActionPurposer knows the purpose of a catalog action (decision.Engine).
type ActionPurposer interface {
	ActionPurpose(actionID string) (arbiter.Purpose, bool)
}

// RecordEvent applies one outcome event, idempotently.
func (s *Server) RecordEvent(ctx context.Context, req *nbapb.RecordEventRequest) (*nbapb.RecordEventResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	e := event(req.GetEvent())
	if e.Purpose == arbiter.PurposeUnspecified && e.ActionID != "" {
		// The catalog knows the action's purpose; the touch is counted
		// against every purpose's caps only when no one does.
		if ap, ok := s.sender.(ActionPurposer); ok {
			if pu, ok := ap.ActionPurpose(e.ActionID); ok {
				e.Purpose = pu
			}
		}
	}
	link, err := s.decisionLink(e.HCPID, e.DecisionID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dup, err := s.profiles.ApplyEvent(ctx, e)
	if err != nil {
		return nil, toStatus(ctx, s.log, prefixFields("event.", err))
	}
	s.dlog.countLink(link)
	return &nbapb.RecordEventResponse{Duplicate: dup, DecisionLink: link}, nil
}

// decisionLink checks an outcome's decision id against its recipient: a
// decision for another recipient is refused (nothing is applied); an id
// this deployment cannot open is unverified (receipts may be lost, or
// have outlived their retention, and the outcome still counts).
func (s *Server) decisionLink(hcpID, id string) (nbapb.DecisionLink, error) {
	if id == "" {
		return nbapb.DecisionLink_DECISION_LINK_UNSPECIFIED, nil
	}
	if s.dlog == nil || s.dlog.cfg.Key == nil {
		return nbapb.DecisionLink_DECISION_LINK_UNVERIFIED, nil
	}
	owner, _, err := s.dlog.cfg.Key.Open(id)
	switch {
	case err != nil:
		return nbapb.DecisionLink_DECISION_LINK_UNVERIFIED, nil
	case owner != hcpID:
		s.dlog.countLink(-1)
		return 0, &arbiter.PreconditionError{Subject: "event.decision_id",
			Description: "is a decision for another recipient; the event was not applied"}
	}
	return nbapb.DecisionLink_DECISION_LINK_VERIFIED, nil
}
