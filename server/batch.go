package server

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/internal/ordered"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// batchConcurrency is how many of a DecideBatch's decisions run at once.
// Concurrent decisions share Redis pipelines (redisstore.WithAutoPipeline)
// and HCP-cache barriers, so a list costs far fewer round trips than its
// length; more than a few dozen only queues for the CPUs.
const batchConcurrency = 32

// batchAhead is how many decisions may be made ahead of the item being
// sent, which bounds the memory a call holds when its client reads slowly.
const batchAhead = 2 * batchConcurrency

// batchResult is one HCP's decision, written by its job before it is sent.
type batchResult struct {
	res *decision.Result
	// resp is res converted, when its receipt needed it first.
	resp *nbapb.DecideResponse
	err  error
}

// errPanic stands for a decision that panicked (logged where it happened).
var errPanic = errors.New("decision panicked")

// DecideBatch decides for each HCP of a list with the same options and
// streams one item per HCP, in the request's order. An unknown HCP is an
// item with a NOT_FOUND error; any other failure (storage unavailable, a
// deadline, a candidate set the catalog lacks) ends the stream with its
// status, the items sent before it standing. The decisions are bounded by
// the server's maximum deadline like a unary call's.
func (s *Server) DecideBatch(req *nbapb.DecideBatchRequest, stream grpc.ServerStreamingServer[nbapb.DecideBatchResponse]) error {
	ctx := stream.Context()
	if err := s.validateDecideBatch(req); err != nil {
		return toStatus(ctx, s.log, err)
	}
	ctx, cancel := s.withMaxDeadline(ctx)
	defer cancel()
	ids := req.GetHcpIds()
	results := make([]batchResult, len(ids))
	decide := func(ctx context.Context, i int) { s.decideItem(ctx, ids[i], req, &results[i]) }
	send := func(i int) error {
		r := &results[i]
		item := &nbapb.DecideBatchResponse{Index: int32(i), HcpId: ids[i]}
		switch {
		case r.err == nil && r.resp != nil:
			item.Decision = r.resp
		case r.err == nil:
			item.Decision = decideResponse(r.res)
		case errors.Is(r.err, arbiter.ErrNotFound):
			item.Error = &nbapb.ItemError{Code: int32(codes.NotFound), Message: "not found"}
		default:
			return toStatus(ctx, s.log, r.err)
		}
		r.res, r.resp = nil, nil // sent: let it go
		return stream.Send(item)
	}
	err := ordered.Run(ctx, len(ids), batchConcurrency, batchAhead, decide, send)
	if err != nil && err == ctx.Err() { // the deadline, or the client gone
		return toStatus(ctx, s.log, err)
	}
	return err // nil, a status from send, or the stream's own error
}

// decideItem makes one HCP's decision into r.
func (s *Server) decideItem(ctx context.Context, hcpID string, req decideOptions, r *batchResult) {
	dreq := decideRequestFor(hcpID, req)
	callerFromIdentity(ctx, &dreq)
	s.decideInto(ctx, dreq, r)
}

// decideInto makes the decision dreq asks for into r, with its receipt
// (a batch item's) and metrics. A panic, which the recovery interceptor
// cannot catch on this goroutine, becomes an internal error that ends
// the call.
func (s *Server) decideInto(ctx context.Context, dreq decision.Request, r *batchResult) {
	defer func() {
		if p := recover(); p != nil {
			// The panic value may hold request data: log its type and the stack only.
			s.log.ErrorContext(ctx, "panic in a batch decision", "panic_type", typeName(p), "stack", string(debug.Stack()))
			r.res, r.err = nil, fmt.Errorf("decide batch: %w", errPanic)
		}
	}()
	start := s.metrics.start()
	r.res, r.err = s.decider.Decide(ctx, dreq)
	if r.err == nil && s.dlog != nil {
		r.resp = decideResponse(r.res)
		r.err = s.logDecision(ctx, decision.KindBatchItem, dreq, r.res, r.resp)
	}
	if r.err == nil {
		s.metrics.decided(start, dreq.Caller, r.res)
	}
}
