package client

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// MaxEventsPerCall is the most events one RecordEvents call may carry.
const MaxEventsPerCall = 1000

// EventOutcome is what became of one event of a RecordEvents batch.
type EventOutcome string

const (
	// EventApplied: applied now.
	EventApplied EventOutcome = "APPLIED"
	// EventDuplicate: its id was applied before (or earlier in the same
	// batch): nothing changed.
	EventDuplicate EventOutcome = "DUPLICATE"
	// EventRejected: not applied; Code and Violations say why.
	EventRejected EventOutcome = "REJECTED"
)

// EventResult is the answer to one event of a RecordEvents batch.
type EventResult struct {
	Outcome EventOutcome
	// DecisionLink says what an applied or duplicate event's DecisionID
	// was found to be (as RecordEventLinked).
	DecisionLink nbapb.DecisionLink
	// Code is, for a rejected event, the code RecordEvent would have
	// answered: InvalidArgument (Violations name the fields), NotFound
	// (no profile for the recipient: send it again once there is one),
	// FailedPrecondition (DecisionID is another recipient's decision),
	// Internal (the recipient's stored state cannot be read).
	Code codes.Code
	// Violations are a rejected event's problems, by the field's path in
	// the request ("events[3].occurred_at"), without personal data.
	Violations []FieldViolation
}

// FieldViolation is one problem with one field.
type FieldViolation struct {
	Field       string
	Description string
}

// RecordEvents reports a batch of 1 to MaxEventsPerCall outcomes in one
// call, each applied as RecordEvent applies it (validated alone,
// atomically, idempotent by Event.ID), and returns a result per event, in
// order. The batch is not all-or-nothing: a bad event is rejected alone.
// An error is the call's: nothing is known of the events then (storage
// failed during the call: any of them may have been applied), and sending
// the same batch again is safe.
func (c *Client) RecordEvents(ctx context.Context, events []Event) ([]EventResult, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &nbapb.RecordEventsRequest{Events: make([]*nbapb.Event, len(events))}
	for i, e := range events {
		req.Events[i] = eventToPB(e)
	}
	resp, err := c.events.RecordEvents(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.GetResults()) != len(events) {
		return nil, fmt.Errorf("client: record events: the server answered %d results for %d events", len(resp.GetResults()), len(events))
	}
	out := make([]EventResult, len(events))
	for i, r := range resp.GetResults() {
		out[i] = EventResult{
			Outcome:      EventOutcome(strings.TrimPrefix(r.GetOutcome().String(), "EVENT_OUTCOME_")),
			DecisionLink: r.GetDecisionLink(),
			Code:         codes.Code(r.GetCode()),
		}
		for _, v := range r.GetViolations() {
			out[i].Violations = append(out[i].Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
		}
	}
	return out, nil
}
