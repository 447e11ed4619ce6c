package client

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// The decision log's calls return the API's own messages: a receipt is a
// stored record whose every field an auditor may need, and the export
// writes it as it is (protojson), so no second shape is kept here.

// GetDecision returns a decision's receipt by id, with the evidence of
// what allowed each recommended or allowed action.
func (c *Client) GetDecision(ctx context.Context, decisionID string) (*nbapb.GetDecisionResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.dlog.GetDecision(ctx, &nbapb.GetDecisionRequest{DecisionId: decisionID})
}

// ListDecisions returns a recipient's receipts with decision times in
// [from, to), oldest first, at most limit (0: 100), and whether there
// were more.
func (c *Client) ListDecisions(ctx context.Context, hcpID string, from, to time.Time, limit int) ([]*nbapb.DecisionReceipt, bool, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.dlog.ListDecisions(ctx, &nbapb.ListDecisionsRequest{HcpId: hcpID, From: timestamppb.New(from),
		To: timestamppb.New(to), Limit: int32(limit)})
	if err != nil {
		return nil, false, err
	}
	return resp.GetReceipts(), resp.GetTruncated(), nil
}

// ReplayDecision recomputes a logged decision and says whether it is
// identical to the logged one.
func (c *Client) ReplayDecision(ctx context.Context, decisionID string) (*nbapb.ReplayDecisionResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.dlog.ReplayDecision(ctx, &nbapb.ReplayDecisionRequest{DecisionId: decisionID})
}

// ExportDecisions streams every receipt with a decision time in
// [from, to) to fn, batch by batch, with the progress so far. It takes as
// long as the log is big: ctx, not the client's timeout, bounds it.
func (c *Client) ExportDecisions(ctx context.Context, from, to time.Time, fn func(*nbapb.ExportDecisionsResponse) error) error {
	stream, err := c.dlog.ExportDecisions(ctx, &nbapb.ExportDecisionsRequest{From: timestamppb.New(from), To: timestamppb.New(to)})
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, fn)
}

// Checkpoint streams a checkpoint of the consent ledgers' chains to fn:
// batches of heads, the last message carrying the checkpoint's time and
// MAC. Keep what fn gets, in order, outside the store.
func (c *Client) Checkpoint(ctx context.Context, fn func(*nbapb.CheckpointResponse) error) error {
	stream, err := c.audit.Checkpoint(ctx, &nbapb.CheckpointRequest{})
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, fn)
}

// VerifyTrail sends a checkpoint (the messages Checkpoint gave, in order;
// none to verify without one), then streams the verification's progress
// and findings to fn until it is done.
func (c *Client) VerifyTrail(ctx context.Context, checkpoint []*nbapb.CheckpointResponse, fn func(*nbapb.VerifyTrailResponse) error) error {
	stream, err := c.audit.VerifyTrail(ctx)
	if err != nil {
		return err
	}
	for _, cp := range checkpoint {
		if err := stream.Send(&nbapb.VerifyTrailRequest{Heads: cp.GetHeads(), TakenAt: cp.GetTakenAt(), Mac: cp.GetMac()}); err != nil {
			return err
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return recvAll(stream.Recv, fn)
}

// EraseRecipient erases a recipient, keeping the minimal, pseudonymous
// proof of their withdrawals (see the API's EraseRecipient).
func (c *Client) EraseRecipient(ctx context.Context, hcpID string) (*nbapb.EraseRecipientResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.profiles.EraseRecipient(ctx, &nbapb.EraseRecipientRequest{HcpId: hcpID})
}

// recvAll gives fn every message of a server stream, until it ends.
func recvAll[T any](recv func() (*T, error), fn func(*T) error) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// ExportLedger streams every recipient's consent ledger entries recorded
// at or after from, to fn, batch by batch: keep them outside the store,
// for ReapplyLedger after a restore.
func (c *Client) ExportLedger(ctx context.Context, from time.Time, fn func(*nbapb.ExportLedgerResponse) error) error {
	stream, err := c.consent.ExportLedger(ctx, &nbapb.ExportLedgerRequest{RecordedFrom: timestamppb.New(from)})
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, fn)
}

// ReapplyLedger re-applies exported ledger entries (at most 1000 a call)
// after Redis was restored from an older backup: the entries the ledger
// lacks are written again; the others are left alone.
func (c *Client) ReapplyLedger(ctx context.Context, entries []*nbapb.ExportedEntry) (*nbapb.ReapplyLedgerResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.consent.ReapplyLedger(ctx, &nbapb.ReapplyLedgerRequest{Entries: entries})
}
