package server

import (
	"context"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Decide ranks candidate actions for one HCP.
func (s *Server) Decide(ctx context.Context, req *nbapb.DecideRequest) (*nbapb.DecideResponse, error) {
	start := s.metrics.start()
	if err := s.validateDecide(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decideRequest(req)
	res, err := s.decider.Decide(ctx, dreq)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := decideResponse(res)
	s.metrics.decided(start, dreq.Caller, res)
	return resp, nil
}
