package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// batchConcurrency is how many of a DecideBatch's decisions run at once.
// Concurrent decisions share Redis pipelines (features.WithAutoPipeline)
// and HCP-cache barriers, so a list costs far fewer round trips than its
// length; more than a few dozen only queues for the CPUs.
const batchConcurrency = 32

// batchResult is one HCP's decision, written by a worker before done is
// closed.
type batchResult struct {
	res  *decision.Result
	err  error
	done chan struct{}
}

// DecideBatch decides for each HCP of a list with the same options and
// streams one item per HCP, in the request's order. An unknown HCP is an
// item with a NOT_FOUND error; any other failure (storage unavailable, a
// deadline, a candidate set the catalog lacks) ends the stream with its
// status, the items sent before it standing. The call is bounded by the
// server's maximum deadline like a unary one.
func (s *Server) DecideBatch(req *nbapb.DecideBatchRequest, stream grpc.ServerStreamingServer[nbapb.DecideBatchResponse]) error {
	ctx := stream.Context()
	if err := s.validateDecideBatch(req); err != nil {
		return toStatus(ctx, s.log, err)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > s.maxDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.maxDeadline)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx) // stops the workers when the stream ends early
	ids := req.GetHcpIds()
	results := make([]batchResult, len(ids))
	for i := range results {
		results[i].done = make(chan struct{})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(batchConcurrency, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				r := &results[i]
				dreq := decideRequestFor(ids[i], req)
				var start time.Time
				if s.metrics != nil {
					start = time.Now()
				}
				r.res, r.err = s.decider.Decide(ctx, dreq)
				if r.err == nil && s.metrics != nil {
					s.metrics.decided(start, dreq.Caller, r.res)
				}
				close(r.done)
			}
		}()
	}
	err := s.sendBatch(ctx, stream, ids, results)
	stop()
	wg.Wait()
	return err
}

// sendBatch sends the results in order as they complete.
func (s *Server) sendBatch(ctx context.Context, stream grpc.ServerStreamingServer[nbapb.DecideBatchResponse], ids []string, results []batchResult) error {
	for i := range results {
		r := &results[i]
		select {
		case <-r.done:
		case <-ctx.Done():
			return toStatus(ctx, s.log, ctx.Err())
		}
		item := &nbapb.DecideBatchResponse{Index: int32(i), HcpId: ids[i]}
		switch {
		case r.err == nil:
			item.Decision = decideResponse(r.res)
		case errors.Is(r.err, arbiter.ErrNotFound):
			item.Error = &nbapb.ItemError{Code: int32(codes.NotFound), Message: "not found"}
		default:
			return toStatus(ctx, s.log, r.err)
		}
		if err := stream.Send(item); err != nil {
			return err
		}
	}
	return nil
}
