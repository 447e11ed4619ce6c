package server

import (
	"context"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// RecordEvent applies one outcome event, idempotently.
func (s *Server) RecordEvent(ctx context.Context, req *nbapb.RecordEventRequest) (*nbapb.RecordEventResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dup, err := s.profiles.ApplyEvent(ctx, event(req.GetEvent()))
	if err != nil {
		return nil, toStatus(ctx, s.log, prefixFields("event.", err))
	}
	return &nbapb.RecordEventResponse{Duplicate: dup}, nil
}
