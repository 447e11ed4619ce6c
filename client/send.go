package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// CheckSend asks whether one action may be sent to one recipient now, or
// at c.PlannedAt, with every reason it may not and the earliest time it
// could; with c.Reserve it books the touch when allowed.
func (c *Client) CheckSend(ctx context.Context, sc SendCheck) (*SendVerdict, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.send.CheckSend(ctx, sendCheckToPB(sc))
	if err != nil {
		return nil, err
	}
	return sendVerdictFromPB(resp), nil
}

// ReleaseReservation frees a reservation that will not be used: NotFound
// when the recipient has none of that id, FailedPrecondition when it was
// already released, sent or expired.
func (c *Client) ReleaseReservation(ctx context.Context, hcpID, reservationID string) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	_, err := c.send.ReleaseReservation(ctx, &nbapb.ReleaseReservationRequest{HcpId: hcpID, ReservationId: reservationID})
	return err
}

// SendBatchItem is the answer to one item of a CheckSendBatch stream.
type SendBatchItem struct {
	// Index is the item's position in the stream, from 0.
	Index          int64
	HCPID          string
	IdempotencyKey string
	// Verdict is set when the item was checked; Err (a gRPC status: NotFound,
	// InvalidArgument) instead when it could not be.
	Verdict *SendVerdict
	Err     error
}

// SendStream is one CheckSendBatch stream: Send items, and Recv their
// answers in the same order (from another goroutine, or interleaved: the
// server reads a bounded window ahead of what it has answered). The stream
// has no default timeout; cancelling ctx aborts it.
type SendStream struct {
	stream grpc.BidiStreamingClient[nbapb.CheckSendBatchRequest, nbapb.CheckSendBatchResponse]
	cancel context.CancelFunc
}

// CheckSendBatch opens a stream of pre-send checks for a campaign list.
// Always Close it.
func (c *Client) CheckSendBatch(ctx context.Context) (*SendStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.send.CheckSendBatch(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	return &SendStream{stream: stream, cancel: cancel}, nil
}

// Send sends one item. When the server has ended the stream, it returns
// io.EOF: Recv then returns the status it ended with.
func (s *SendStream) Send(sc SendCheck) error {
	return s.stream.Send(&nbapb.CheckSendBatchRequest{Check: sendCheckToPB(sc)})
}

// MaxChecksPerSend is the most items SendMany sends in one message.
const MaxChecksPerSend = 1000

// SendMany sends several items in one message (at most MaxChecksPerSend),
// which costs both sides less per item than Send; each is answered on its
// own, in order.
func (s *SendStream) SendMany(scs []SendCheck) error {
	if len(scs) > MaxChecksPerSend {
		return fmt.Errorf("client: SendMany: %d items, at most %d a message", len(scs), MaxChecksPerSend)
	}
	m := &nbapb.CheckSendBatchRequest{Checks: make([]*nbapb.CheckSendRequest, len(scs))}
	for i, sc := range scs {
		m.Checks[i] = sendCheckToPB(sc)
	}
	return s.stream.Send(m)
}

// CloseSend says no more items will be sent; Recv returns io.EOF after the
// last answer.
func (s *SendStream) CloseSend() error { return s.stream.CloseSend() }

// Recv returns the next item's answer, io.EOF after the last, or the
// status that ended the stream.
func (s *SendStream) Recv() (SendBatchItem, error) {
	m, err := s.stream.Recv()
	if err != nil {
		return SendBatchItem{}, err
	}
	it := SendBatchItem{Index: m.GetIndex(), HCPID: m.GetHcpId(), IdempotencyKey: m.GetIdempotencyKey()}
	switch e, r := m.GetError(), m.GetResult(); {
	case e != nil:
		code := codes.Code(e.GetCode())
		if code == codes.OK {
			code = codes.Unknown
		}
		it.Err = status.Error(code, e.GetMessage())
	case r != nil:
		it.Verdict = sendVerdictFromPB(r)
	default:
		it.Err = status.Error(codes.Unknown, "neither a result nor an error")
	}
	return it, nil
}

// Close aborts the stream if it is still open and releases it.
func (s *SendStream) Close() { s.cancel() }
