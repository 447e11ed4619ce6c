package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// ActionPurposer knows the purpose of a catalog action (decision.Engine).
type ActionPurposer interface {
	ActionPurpose(actionID string) (arbiter.Purpose, bool)
}

// MaxEventsPerCall is the most events one RecordEvents call may carry.
const MaxEventsPerCall = 1000

// RecordEvent applies one outcome event, idempotently.
func (s *Server) RecordEvent(ctx context.Context, req *nbapb.RecordEventRequest) (*nbapb.RecordEventResponse, error) {
	e, link, err := s.eventInput(req.GetEvent(), "event.")
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dup, err := s.profiles.ApplyEvent(ctx, e)
	if err != nil {
		return nil, toStatus(ctx, s.log, prefixFields("event.", err))
	}
	s.dlog.countLink(link)
	return &nbapb.RecordEventResponse{Duplicate: dup, DecisionLink: link}, nil
}

// RecordEvents applies a batch of outcome events, each as RecordEvent
// applies it (eventInput, then the store's ApplyEvents, which applies
// each event as ApplyEvent does), and answers each in order. An event
// RecordEvent would refuse is rejected alone (eventRejection); a failure
// of storage fails the call (the events may or may not have been
// applied: unavailableMessage).
func (s *Server) RecordEvents(ctx context.Context, req *nbapb.RecordEventsRequest) (*nbapb.RecordEventsResponse, error) {
	events := req.GetEvents()
	if n := len(events); n == 0 || n > MaxEventsPerCall {
		return nil, toStatus(ctx, s.log, arbiter.Invalid("events", fmt.Sprintf("must hold 1 to %d events, got %d", MaxEventsPerCall, n)))
	}
	resp := &nbapb.RecordEventsResponse{Results: make([]*nbapb.EventResult, len(events))}
	valid := make([]recipient.Event, 0, len(events))
	at := make([]int, 0, len(events)) // valid[j] is events[at[j]]
	for i, pe := range events {
		e, link, err := s.eventInput(pe, eventField(i))
		if err != nil {
			r, ok := s.eventRejection(ctx, err, eventField(i))
			if !ok {
				return nil, toStatus(ctx, s.log, err)
			}
			resp.Results[i] = r
			continue
		}
		resp.Results[i] = &nbapb.EventResult{DecisionLink: link}
		valid = append(valid, e)
		at = append(at, i)
	}
	if len(valid) > 0 {
		outs, err := s.profiles.ApplyEvents(ctx, valid)
		if err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		if len(outs) != len(valid) {
			return nil, toStatus(ctx, s.log, fmt.Errorf("server: record events: %d outcomes for %d events", len(outs), len(valid)))
		}
		for j, o := range outs {
			i := at[j]
			switch {
			case o.Err != nil:
				r, ok := s.eventRejection(ctx, prefixFields(eventField(i), o.Err), eventField(i))
				if !ok {
					return nil, toStatus(ctx, s.log, o.Err)
				}
				resp.Results[i] = r
				continue
			case o.Duplicate:
				resp.Results[i].Outcome = nbapb.EventOutcome_EVENT_OUTCOME_DUPLICATE
			default:
				resp.Results[i].Outcome = nbapb.EventOutcome_EVENT_OUTCOME_APPLIED
			}
			s.dlog.countLink(resp.Results[i].DecisionLink)
		}
	}
	for _, r := range resp.Results {
		switch r.Outcome {
		case nbapb.EventOutcome_EVENT_OUTCOME_APPLIED:
			resp.Applied++
		case nbapb.EventOutcome_EVENT_OUTCOME_DUPLICATE:
			resp.Duplicates++
		default:
			resp.Rejected++
		}
	}
	return resp, nil
}

// eventField is the path of the i-th event of a RecordEvents request, with
// the dot its fields follow.
func eventField(i int) string { return "events[" + strconv.Itoa(i) + "]." }

// eventInput turns an event of a request, whose fields are named with
// the prefix field ("event.", "events[3]."), into the event the store
// applies: its strings and times checked, its purpose the catalog
// action's when it gives none, its decision id checked against its
// recipient. The store validates the rest (recipient.Event.ValidateAt).
func (s *Server) eventInput(pe *nbapb.Event, field string) (recipient.Event, nbapb.DecisionLink, error) {
	if pe != nil {
		var c checker
		walkStrings(pe.ProtoReflect(), field, &c)
		if err := c.Err(); err != nil {
			return recipient.Event{}, 0, err
		}
	}
	e := event(pe)
	if e.Type == arbiter.EventDismissed || e.Type == arbiter.EventCompleted {
		// A rep's feedback comes with its reason and its decision:
		// SuggestionFeedback records it.
		return recipient.Event{}, 0, arbiter.Invalid(field+"type", "dismissed and completed are a rep's feedback on a suggestion: SuggestionFeedback records them")
	}
	if e.Purpose == arbiter.PurposeUnspecified && e.ActionID != "" {
		// The catalog knows the action's purpose; the touch is counted
		// against every purpose's caps only when no one does.
		if ap, ok := s.sender.(ActionPurposer); ok {
			if pu, ok := ap.ActionPurpose(e.ActionID); ok {
				e.Purpose = pu
			}
		}
	}
	link, err := s.decisionLink(e.HCPID, e.DecisionID, field)
	if err != nil {
		return recipient.Event{}, 0, err
	}
	return e, link, nil
}

// eventRejection is the result of a batch's event that RecordEvent would
// have refused with err, alone: invalid (its violations, named by their
// path in the request), a
// decision of another recipient, a recipient without a profile, or a
// recipient whose stored state cannot be read (logged, as the Internal it
// is for RecordEvent). ok is false for any other error (storage
// unavailable, a deadline, a bug), which fails the whole call.
func (s *Server) eventRejection(ctx context.Context, err error, field string) (r *nbapb.EventResult, ok bool) {
	r = &nbapb.EventResult{Outcome: nbapb.EventOutcome_EVENT_OUTCOME_REJECTED}
	var inv *arbiter.InvalidError
	var pre *arbiter.PreconditionError
	switch {
	case errors.As(err, &inv):
		r.Code = int32(codes.InvalidArgument)
		for _, v := range inv.Violations {
			r.Violations = append(r.Violations, &nbapb.FieldViolation{Field: v.Field, Description: v.Description})
		}
	case errors.As(err, &pre):
		r.Code = int32(codes.FailedPrecondition)
		r.Violations = []*nbapb.FieldViolation{{Field: pre.Subject, Description: pre.Description}}
	case errors.Is(err, arbiter.ErrNotFound):
		r.Code = int32(codes.NotFound)
		r.Violations = []*nbapb.FieldViolation{{Field: field + "hcp_id",
			Description: "no profile for this recipient: the event was not applied (send it again once the profile exists)"}}
	case errors.Is(err, arbiter.ErrCorrupt):
		s.log.ErrorContext(ctx, "event not applied: the recipient's stored state cannot be read", "err", err)
		r.Code = int32(codes.Internal)
		r.Violations = []*nbapb.FieldViolation{{Field: field + "hcp_id",
			Description: "this recipient's stored state cannot be read: the event was not applied"}}
	default:
		return nil, false
	}
	return r, true
}

// decisionLink checks an outcome's decision id against its recipient: a
// decision for another recipient is refused (nothing is applied); an id
// this deployment cannot open is unverified (receipts may be lost, or
// have outlived their retention, and the outcome still counts). field
// prefixes the decision id's name in the refusal.
func (s *Server) decisionLink(hcpID, id, field string) (nbapb.DecisionLink, error) {
	if id == "" {
		return nbapb.DecisionLink_DECISION_LINK_UNSPECIFIED, nil
	}
	if s.dlog == nil || s.dlog.cfg.Key == nil {
		return nbapb.DecisionLink_DECISION_LINK_UNVERIFIED, nil
	}
	owner, _, err := s.dlog.cfg.Key.Open(id)
	switch {
	case err != nil:
		return nbapb.DecisionLink_DECISION_LINK_UNVERIFIED, nil
	case owner != hcpID:
		s.dlog.countLink(-1)
		return 0, &arbiter.PreconditionError{Subject: field + "decision_id",
			Description: "is a decision for another recipient; the event was not applied"}
	}
	return nbapb.DecisionLink_DECISION_LINK_VERIFIED, nil
}
