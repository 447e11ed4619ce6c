package server

import (
	"context"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Decide ranks candidate actions for one HCP.
func (s *Server) Decide(ctx context.Context, req *nbapb.DecideRequest) (*nbapb.DecideResponse, error) {
	if err := s.validateDecide(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	res, err := s.decider.Decide(ctx, decideRequest(req))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return decideResponse(res), nil
}
