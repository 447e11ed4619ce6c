package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/internal/workers"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Sender runs pre-send checks and books touches (decision.Engine).
type Sender interface {
	CheckSend(ctx context.Context, req decision.SendRequest) (*decision.SendResult, error)
	Release(ctx context.Context, hcpID, reservationID string) error
}

// WithSender serves SendService with s; without it the service is not
// registered.
func WithSender(s Sender) Option { return func(srv *Server) { srv.sender = s } }

// WithSendStreamLimits bounds a CheckSendBatch stream: it ends when no item
// arrives for idle (default 30s), and after maxItems items (default ten
// million).
func WithSendStreamLimits(idle time.Duration, maxItems int64) Option {
	return func(s *Server) { s.sendIdle, s.sendMaxItems = idle, maxItems }
}

// CheckSend checks, and with reserve books, one send.
func (s *Server) CheckSend(ctx context.Context, req *nbapb.CheckSendRequest) (*nbapb.CheckSendResponse, error) {
	if err := validateCheckSend(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	sreq := sendRequest(ctx, req)
	res, err := s.sender.CheckSend(ctx, sreq)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := checkSendResponse(res)
	if err := s.logCheck(ctx, sreq, res, resp); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return resp, nil
}

// ReleaseReservation frees a reservation.
func (s *Server) ReleaseReservation(ctx context.Context, req *nbapb.ReleaseReservationRequest) (*nbapb.ReleaseReservationResponse, error) {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	c.id("reservation_id", req.GetReservationId(), true)
	if strings.Contains(req.GetReservationId(), "|") {
		c.Add("reservation_id", "must not contain '|'")
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	// Reservation ids are unguessable (120 bits, from the caller's key
	// and identity or random): a caller can release only one it was given.
	if err := s.sender.Release(ctx, req.GetHcpId(), req.GetReservationId()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.ReleaseReservationResponse{}, nil
}

func validateCheckSend(req *nbapb.CheckSendRequest) error {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	c.id("action_id", req.GetActionId(), false)
	c.id("content_id", req.GetContentId(), false)
	if ch := req.GetChannel(); ch != nbapb.Channel_CHANNEL_UNSPECIFIED {
		c.channel("channel", ch)
	}
	if k := req.GetIdempotencyKey(); k != "" {
		c.id("idempotency_key", k, false)
	}
	if t := req.GetPlannedAt(); t != nil && t.CheckValid() != nil {
		c.Add("planned_at", "not a valid timestamp")
	}
	return c.Err()
}

func sendRequest(ctx context.Context, req *nbapb.CheckSendRequest) decision.SendRequest {
	r := decision.SendRequest{
		HCPID: req.GetHcpId(), ActionID: req.GetActionId(), Channel: fromChannel(req.GetChannel()),
		ContentID: req.GetContentId(), At: fromTS(req.GetPlannedAt()), Reserve: req.GetReserve(),
		IdempotencyKey: req.GetIdempotencyKey(), Caller: arbiter.CallerKind(req.GetCaller()),
	}
	var d decision.Request
	callerFromIdentity(ctx, &d)
	if _, ok := access.FromContext(ctx); ok {
		r.Caller, r.Territories = d.Caller, d.Territories
	}
	return r
}

var reservationStates = [...]nbapb.ReservationState{
	contact.Reserved: nbapb.ReservationState_RESERVATION_STATE_RESERVED,
	contact.Sent:     nbapb.ReservationState_RESERVATION_STATE_SENT,
	contact.Released: nbapb.ReservationState_RESERVATION_STATE_RELEASED,
}

func checkSendResponse(r *decision.SendResult) *nbapb.CheckSendResponse {
	out := &nbapb.CheckSendResponse{
		Allowed: r.Allowed, EarliestAllowedAt: ts(r.EarliestAllowed), DecisionId: r.DecisionID,
		DefinitionsVersion: r.DefinitionsVersion, PlannedAt: ts(r.At), ActionId: r.Action.ID,
	}
	for _, b := range r.Blocks {
		out.Blocks = append(out.Blocks, &nbapb.Suppression{ActionId: r.Action.ID, Reason: reasonCode(b.Reason),
			Detail: b.Detail, ClearsAt: ts(b.ClearsAt)})
	}
	if v := r.Reservation; v != nil {
		out.ReservationId, out.ReservationExpiresAt, out.ReservationExisting = v.ID, ts(v.ExpiresAt), v.Existing
		if int(v.State) < len(reservationStates) {
			out.ReservationState = reservationStates[v.State]
		}
	}
	return out
}

// maxChecksPerMessage bounds the items of one CheckSendBatch message.
const maxChecksPerMessage = 1000

// sendSlot is one item of a CheckSendBatch, from its arrival to its answer.
type sendSlot struct {
	index int64
	req   *nbapb.CheckSendRequest
	done  chan struct{}
	item  *nbapb.CheckSendBatchResponse
	err   error // ends the stream
}

// CheckSendBatch checks a campaign list, item by item, answering in order.
// One goroutine reads items, at most batchAhead ahead of the one being
// answered (the client is then held back by flow control); up to
// batchConcurrency checks run at once.
func (s *Server) CheckSendBatch(stream grpc.BidiStreamingServer[nbapb.CheckSendBatchRequest, nbapb.CheckSendBatchResponse]) error {
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	slots := make(chan *sendSlot, batchAhead)
	sem := make(chan struct{}, batchConcurrency)
	// The checks in flight: the handler waits for them before it returns.
	// checksMu and over keep the reader from starting one once the
	// handler has begun to wait (a WaitGroup must not grow then).
	var (
		wg       sync.WaitGroup
		checksMu sync.Mutex
		over     bool
	)
	defer func() {
		checksMu.Lock()
		over = true
		checksMu.Unlock()
		cancel(nil)
		wg.Wait()
	}()

	errIdle := status.Errorf(codes.DeadlineExceeded, "no item arrived for %s: the stream is closed; send the rest again on a new stream", s.sendIdle)
	// start queues one item and starts its check; false when the stream
	// is over.
	var i int64
	start := func(req *nbapb.CheckSendRequest) bool {
		if i >= s.sendMaxItems {
			cancel(status.Errorf(codes.ResourceExhausted, "a stream takes at most %d items: send the rest on a new stream", s.sendMaxItems))
			return false
		}
		slot := &sendSlot{index: i, req: req, done: make(chan struct{})}
		i++
		select {
		case slots <- slot:
		case <-ctx.Done():
			return false
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			close(slot.done)
			return false
		}
		checksMu.Lock()
		if over {
			checksMu.Unlock()
			slot.err = errShuttingDown // answered only when the server is stopping
			close(slot.done)
			return false
		}
		wg.Add(1)
		checksMu.Unlock()
		workers.Go(func() { // a long-lived goroutine: see package workers
			defer wg.Done()
			defer func() { <-sem }()
			defer close(slot.done)
			s.checkSendItem(ctx, slot)
		})
		return true
	}
	go func() {
		defer close(slots)
		for {
			idle := time.AfterFunc(s.sendIdle, func() { cancel(errIdle) })
			in, err := stream.Recv()
			idle.Stop()
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					cancel(err)
				}
				return
			}
			checks := in.GetChecks()
			if len(checks) > maxChecksPerMessage {
				cancel(status.Errorf(codes.InvalidArgument, "checks: at most %d items per message, got %d", maxChecksPerMessage, len(checks)))
				return
			}
			if c := in.GetCheck(); c != nil || len(checks) == 0 {
				if !start(c) { // an empty message is an item without a check: an item error
					return
				}
			}
			for _, c := range checks {
				if !start(c) {
					return
				}
			}
		}
	}()
	// The answers, in order. Returning is what ends a Recv the reader is
	// blocked in, so the loop also watches ctx: the idle timeout, and the
	// client gone, end the call even while no item arrives.
	//
	// When the server stops (StopStreams), no new check starts: the
	// checks already running are answered in order, and the first item
	// whose check had not started ends the stream with UNAVAILABLE.
	stopping := false
	for {
		var slot *sendSlot
		var ok bool
		if stopping {
			select {
			case slot, ok = <-slots:
			default:
				return errShuttingDown
			}
		} else {
			select {
			case slot, ok = <-slots:
			case <-ctx.Done():
			case <-s.stopper.stop:
				checksMu.Lock()
				over = true
				checksMu.Unlock()
				stopping = true
				continue
			}
		}
		if !ok || ctx.Err() != nil {
			break
		}
		select {
		case <-slot.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if slot.err != nil {
			cancel(slot.err)
			return toStatus(ctx, s.log, slot.err)
		}
		if err := stream.Send(slot.item); err != nil {
			cancel(err)
			return err
		}
		slot.item = nil
	}
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		if _, ok := status.FromError(cause); ok {
			return cause
		}
		return toStatus(ctx, s.log, cause)
	}
	return nil
}

// checkSendItem checks one item into slot. Errors of the item's own (bad
// input, an unknown recipient) become item errors; others end the stream.
func (s *Server) checkSendItem(ctx context.Context, slot *sendSlot) {
	defer func() {
		if p := recover(); p != nil {
			s.log.ErrorContext(ctx, "panic in a batch send check", "panic_type", typeName(p), "stack", string(debug.Stack()))
			slot.err = fmt.Errorf("check send batch: %w", errPanic)
		}
	}()
	req := slot.req
	item := &nbapb.CheckSendBatchResponse{Index: slot.index, HcpId: req.GetHcpId(), IdempotencyKey: req.GetIdempotencyKey()}
	slot.item = item
	if req == nil {
		item.Error = &nbapb.ItemError{Code: int32(codes.InvalidArgument), Message: "check: required"}
		return
	}
	if err := validateCheckSend(req); err != nil {
		item.Error = &nbapb.ItemError{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return
	}
	if req.GetReserve() && req.GetIdempotencyKey() == "" {
		// A stream may be sent again after it breaks: a booking without a
		// key would be booked twice.
		item.Error = &nbapb.ItemError{Code: int32(codes.InvalidArgument), Message: "idempotency_key: required with reserve in a batch"}
		return
	}
	sreq := sendRequest(ctx, req)
	res, err := s.sender.CheckSend(ctx, sreq)
	if err == nil {
		item.Result = checkSendResponse(res)
		err = s.logCheck(ctx, sreq, res, item.Result)
	}
	var inv *arbiter.InvalidError
	var pre *arbiter.PreconditionError
	switch {
	case err == nil:
	case errors.As(err, &inv):
		item.Error = &nbapb.ItemError{Code: int32(codes.InvalidArgument), Message: inv.Error()}
	case errors.As(err, &pre):
		item.Error = &nbapb.ItemError{Code: int32(codes.FailedPrecondition), Message: pre.Error()}
	case errors.Is(err, arbiter.ErrNotFound):
		item.Error = &nbapb.ItemError{Code: int32(codes.NotFound), Message: "not found"}
	default:
		slot.err = err
	}
}
