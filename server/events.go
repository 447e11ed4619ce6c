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
	dup, err := s.profiles.ApplyEvent(ctx, e)
	if err != nil {
		return nil, toStatus(ctx, s.log, prefixFields("event.", err))
	}
	return &nbapb.RecordEventResponse{Duplicate: dup}, nil
}
