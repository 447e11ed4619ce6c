package server

import (
	"context"

	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// callerFromIdentity sets the caller kind from the authenticated caller's
// role, when there is one: it weighs the decision, so an authenticated
// caller does not choose it with a request field.
//
// A rep tool (a caller with the rep tool role and not the marketing
// platform's) decides only for recipients of its territories; with none,
// for no one.
func callerFromIdentity(ctx context.Context, r *decision.Request) {
	p, ok := access.FromContext(ctx)
	if !ok {
		return
	}
	r.Caller = p.CallerKind()
	if p.Has(access.RepTool) && !p.Has(access.MarketingPlatform) {
		r.Territories = append([]string{}, p.Territories...)
	}
}

// Decide ranks candidate actions for one HCP.
func (s *Server) Decide(ctx context.Context, req *nbapb.DecideRequest) (*nbapb.DecideResponse, error) {
	start := s.metrics.start()
	if err := s.validateDecide(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decideRequest(req)
	callerFromIdentity(ctx, &dreq)
	res, err := s.decider.Decide(ctx, dreq)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := decideResponse(res)
	if err := s.logDecision(ctx, decision.KindDecide, dreq, res, resp); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.metrics.decided(start, dreq.Caller, res)
	if s.tracer != nil {
		s.traceDecision(ctx, res)
	}
	return resp, nil
}

// Ping does nothing: an authenticated caller's check that the server is
// reachable and its token accepted, and the benchmarks' empty call.
func (s *Server) Ping(context.Context, *nbapb.PingRequest) (*nbapb.PingResponse, error) {
	return &nbapb.PingResponse{}, nil
}
