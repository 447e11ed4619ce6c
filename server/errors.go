package server

import (
	"context"
	"errors"
	"google.golang.org/grpc"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// toStatus maps a domain error to the status a client sees. It is the only
// place that decides codes and client-facing messages.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (e.g. from the gRPC runtime)
	}
	var inv *arbiter.InvalidError
	var pre *arbiter.PreconditionError
	switch {
	case errors.As(err, &inv):
		return invalidStatus(inv)
	case errors.As(err, &pre):
		return preconditionStatus(pre)
	case errors.Is(err, arbiter.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, context.DeadlineExceeded):
		log.WarnContext(ctx, "deadline exceeded", "err", err)
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, arbiter.ErrUnavailable):
		log.WarnContext(ctx, "storage unavailable", "err", err)
		return status.Error(codes.Unavailable, unavailableMessage(ctx))
	case errors.Is(err, arbiter.ErrResourceExhausted):
		return status.Error(codes.ResourceExhausted, "resource exhausted")
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

func invalidStatus(inv *arbiter.InvalidError) error {
	st := status.New(codes.InvalidArgument, inv.Error())
	br := &errdetails.BadRequest{}
	for _, v := range inv.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description,
		})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

func preconditionStatus(e *arbiter.PreconditionError) error {
	st := status.New(codes.FailedPrecondition, e.Error())
	pf := &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{
		{Type: "STATE", Subject: e.Subject, Description: e.Description}}}
	if withDetails, err := st.WithDetails(pf); err == nil {
		st = withDetails
	}
	return st.Err()
}

// unavailableMessage says what is true when storage failed during the
// call: a read made no decision; a write may have been applied before its
// acknowledgement was lost, so the caller must not be told it was not.
func unavailableMessage(ctx context.Context) string {
	method, _ := grpc.Method(ctx)
	switch method {
	case nbapb.DecisionService_Decide_FullMethodName, nbapb.DecisionService_DecideBatch_FullMethodName,
		nbapb.DecisionService_WhyNot_FullMethodName:
		return "storage unavailable; no decision was made, retry later"
	case nbapb.ProfileService_GetProfile_FullMethodName, nbapb.ConsentService_GetConsent_FullMethodName,
		nbapb.ConsentService_GetConsentHistory_FullMethodName, nbapb.JourneyService_GetJourneyProgress_FullMethodName,
		nbapb.JourneyService_ListDue_FullMethodName, nbapb.JourneyService_GetJourneyStats_FullMethodName,
		nbapb.DefinitionsService_GetActiveDefinitions_FullMethodName,
		nbapb.DecisionLogService_GetDecision_FullMethodName, nbapb.DecisionLogService_ListDecisions_FullMethodName,
		nbapb.DecisionLogService_ReplayDecision_FullMethodName, nbapb.DecisionLogService_ExportDecisions_FullMethodName,
		nbapb.AuditService_Checkpoint_FullMethodName, nbapb.AuditService_VerifyTrail_FullMethodName,
		nbapb.ConsentService_ExportLedger_FullMethodName:
		return "storage unavailable; nothing was read, retry later"
	case nbapb.EventService_RecordEvents_FullMethodName:
		return "storage unavailable; each event of this batch may or may not have been applied: send the whole " +
			"batch again, which is safe (events are applied once per event_id: those already applied come back DUPLICATE)"
	case nbapb.SendService_CheckSend_FullMethodName, nbapb.SendService_CheckSendBatch_FullMethodName:
		return "storage unavailable; the check did not complete; with reserve, a reservation may have been booked: " +
			"retry with the same idempotency_key"
	}
	return "storage unavailable; this write may or may not have been applied: read it back, or retry it " +
		"(an event is applied once per event_id; a consent record sent again changes nothing, and adds a ledger entry)"
}
