package server

import (
	"context"
	"time"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Decide ranks candidate actions for one HCP.
func (s *Server) Decide(ctx context.Context, req *nbapb.DecideRequest) (*nbapb.DecideResponse, error) {
	var start time.Time
	if s.metrics != nil {
		start = time.Now()
	}
	if err := s.validateDecide(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decideRequest(req)
	res, err := s.decider.Decide(ctx, dreq)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := decideResponse(res)
	if s.metrics != nil {
		s.metrics.decided(start, dreq.Caller, res)
	}
	return resp, nil
}
