package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/internal/ordered"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/rules"
)

// Journeyer answers journey questions with the definitions in use (the
// server program's follower, or a decision.Engine).
type Journeyer interface {
	Journeys(ctx context.Context, req decision.Request) (*decision.JourneyResult, error)
	Journey(id string) (*rules.Journey, bool)
	// RefreshPauses reads the paused journeys again, so that a pause or a
	// resume applies on this replica before the call returns (the others
	// follow within their poll interval).
	RefreshPauses(ctx context.Context) error
}

// JourneyStore keeps what journeys store: operators' moves, the members
// index and pauses (redisstore.Store).
type JourneyStore interface {
	MoveInJourney(ctx context.Context, id, journey, step string, at time.Time) error
	AddJourneyMember(ctx context.Context, journeys []string, id string, at time.Time) error
	JourneyMembers(ctx context.Context, journey string, since time.Time, keep time.Duration, page int, fn func(ids []string) error) error
	SetJourneyPaused(ctx context.Context, journey string, paused bool) error
}

// WithJourneys serves the JourneyService with j and st.
func WithJourneys(j Journeyer, st JourneyStore) Option {
	return func(s *Server) { s.journeyer, s.journeyStore = j, st }
}

// memberPage is how many members ListDue and the KPIs read per page, and
// memberWorkers how many recipients they load at once.
const (
	memberPage    = 500
	memberWorkers = 16
)

func (s *Server) journey(c *checker, field, id string) *rules.Journey {
	if id == "" {
		c.Add(field, "required")
		return nil
	}
	j, ok := s.journeyer.Journey(id)
	if !ok {
		c.Add(field, "no journey of this id in the definitions in use")
	}
	return j
}

// GetJourneyProgress returns one recipient's progress in every journey.
func (s *Server) GetJourneyProgress(ctx context.Context, req *nbapb.GetJourneyProgressRequest) (*nbapb.GetJourneyProgressResponse, error) {
	var c checker
	c.hcpID("recipient_id", req.GetRecipientId())
	if t := req.GetAt(); t != nil && t.CheckValid() != nil {
		c.Add("at", "not a valid timestamp")
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decision.Request{HCPID: req.GetRecipientId(), At: fromTS(req.GetAt())}
	callerFromIdentity(ctx, &dreq)
	res, err := s.journeyer.Journeys(ctx, dreq)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &nbapb.GetJourneyProgressResponse{Persona: res.Persona}
	for i := range res.Journeys {
		out.Journeys = append(out.Journeys, journeyProgress(&res.Journeys[i], res.At))
	}
	return out, nil
}

func journeyProgress(p *rules.Progress, at time.Time) *nbapb.JourneyProgress {
	j := p.Journey
	out := &nbapb.JourneyProgress{
		JourneyId: j.ID, JourneyName: j.Name, Status: nbapb.JourneyStatus(p.Status + 1),
		EnteredAt: ts(p.EnteredAt), EndedAt: ts(p.EndedAt), MovedBy: p.Operator, Paused: p.Paused,
		Description: decision.Describe(p, at),
	}
	if p.Status == rules.Active || p.Status == rules.Eligible {
		out.StepId, out.Step, out.DueAt = j.Steps[p.Step].ID, int32(p.Step+1), ts(p.DueAt)
		out.WaitingFor = nbapb.EventType(p.WaitingFor)
	}
	if p.OffRamp != nil {
		out.OffRampId = p.OffRamp.ID
	}
	return out
}

// ListDue streams the journey's members whose next step is due by before.
func (s *Server) ListDue(req *nbapb.ListDueRequest, stream grpc.ServerStreamingServer[nbapb.ListDueResponse]) error {
	ctx := stream.Context()
	var c checker
	j := s.journey(&c, "journey_id", req.GetJourneyId())
	step := -1
	if j != nil && req.GetStepId() != "" {
		for k := range j.Steps {
			if j.Steps[k].ID == req.GetStepId() {
				step = k
			}
		}
		if step < 0 {
			c.Add("step_id", "no step of this id in the journey")
		}
	}
	if t := req.GetBefore(); t != nil && t.CheckValid() != nil {
		c.Add("before", "not a valid timestamp")
	}
	if err := c.Err(); err != nil {
		return toStatus(ctx, s.log, err)
	}
	before := fromTS(req.GetBefore())
	if before.IsZero() {
		before = time.Now()
	}
	err := s.eachMember(ctx, j, before, func(res *decision.JourneyResult, p *rules.Progress, id string) error {
		if p.Status != rules.Active && p.Status != rules.Eligible || p.Paused || p.DueAt.IsZero() || p.DueAt.After(before) ||
			step >= 0 && p.Step != step {
			return nil
		}
		return stream.Send(&nbapb.ListDueResponse{RecipientId: id, StepId: j.Steps[p.Step].ID, Step: int32(p.Step + 1), DueAt: ts(p.DueAt)})
	})
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	return nil
}

// errDefinitionsChanged: the journey left the definitions during the call
// (a publish).
var errDefinitionsChanged = &arbiter.PreconditionError{Subject: "journey_id",
	Description: "the definitions changed during the call and no longer have this journey"}

// progressOf is the progress in journey id of res (nil: the definitions
// res was worked out with have no such journey: a publish came between).
func progressOf(res *decision.JourneyResult, id string) *rules.Progress {
	for i := range res.Journeys {
		if res.Journeys[i].Journey.ID == id {
			return &res.Journeys[i]
		}
	}
	return nil
}

// eachMember derives the progress in j at `at` of every member of j, a
// page at a time with a few loads at once, and calls fn for each in the
// members' order (from one goroutine). A member that no longer exists is
// skipped.
func (s *Server) eachMember(ctx context.Context, j *rules.Journey, at time.Time,
	fn func(res *decision.JourneyResult, p *rules.Progress, id string) error) error {
	// A member last sent a step within twice the maximum duration may be in
	// a run, or resting after one; members older than three times it are
	// dropped.
	return s.journeyStore.JourneyMembers(ctx, j.ID, at.Add(-2*j.MaxDuration), 3*j.MaxDuration, memberPage, func(ids []string) error {
		results := make([]*decision.JourneyResult, len(ids))
		errs := make([]error, len(ids))
		return ordered.Run(ctx, len(ids), memberWorkers, 4*memberWorkers, func(ctx context.Context, i int) {
			results[i], errs[i] = s.journeyer.Journeys(ctx, decision.Request{HCPID: ids[i], At: at})
		}, func(i int) error {
			switch {
			case errors.Is(errs[i], arbiter.ErrNotFound):
				return nil
			case errs[i] != nil:
				return errs[i]
			}
			res := results[i]
			results[i] = nil
			p := progressOf(res, j.ID)
			if p == nil {
				return errDefinitionsChanged
			}
			return fn(res, p, ids[i])
		})
	})
}

// MoveRecipient moves one recipient to a step of a journey, or out of it.
func (s *Server) MoveRecipient(ctx context.Context, req *nbapb.MoveRecipientRequest) (*nbapb.MoveRecipientResponse, error) {
	var c checker
	c.hcpID("recipient_id", req.GetRecipientId())
	j := s.journey(&c, "journey_id", req.GetJourneyId())
	step := -1
	switch {
	case req.GetExit() && req.GetStepId() != "":
		c.Add("step_id", "give a step, or exit, not both")
	case !req.GetExit() && j != nil:
		for k := range j.Steps {
			if j.Steps[k].ID == req.GetStepId() {
				step = k
			}
		}
		if step < 0 {
			c.Add("step_id", "no step of this id in the journey (or set exit)")
		}
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	now := time.Now()
	stepID := ""
	if step >= 0 {
		stepID = j.Steps[step].ID
	}
	if err := s.journeyStore.MoveInJourney(ctx, req.GetRecipientId(), j.ID, stepID, now); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	// A moved recipient is a member: ListDue and the KPIs find them.
	if err := s.journeyStore.AddJourneyMember(ctx, []string{j.ID}, req.GetRecipientId(), now); err != nil {
		return nil, toStatus(ctx, s.log, fmt.Errorf("the move was recorded; indexing it failed: %w", err))
	}
	s.log.Info("journey: recipient moved", "journey", j.ID, "step", step)
	res, err := s.journeyer.Journeys(ctx, decision.Request{HCPID: req.GetRecipientId(), At: now})
	if err != nil {
		return nil, toStatus(ctx, s.log, fmt.Errorf("the move was recorded; reading it back failed: %w", err))
	}
	p := progressOf(res, j.ID)
	if p == nil {
		return nil, toStatus(ctx, s.log, errDefinitionsChanged)
	}
	return &nbapb.MoveRecipientResponse{Progress: journeyProgress(p, res.At)}, nil
}

// PauseJourney pauses a journey for everyone.
func (s *Server) PauseJourney(ctx context.Context, req *nbapb.PauseJourneyRequest) (*nbapb.PauseJourneyResponse, error) {
	if err := s.setPaused(ctx, req.GetJourneyId(), true); err != nil {
		return nil, err
	}
	return &nbapb.PauseJourneyResponse{}, nil
}

// ResumeJourney resumes a paused journey.
func (s *Server) ResumeJourney(ctx context.Context, req *nbapb.ResumeJourneyRequest) (*nbapb.ResumeJourneyResponse, error) {
	if err := s.setPaused(ctx, req.GetJourneyId(), false); err != nil {
		return nil, err
	}
	return &nbapb.ResumeJourneyResponse{}, nil
}

func (s *Server) setPaused(ctx context.Context, id string, paused bool) error {
	var c checker
	j := s.journey(&c, "journey_id", id)
	if err := c.Err(); err != nil {
		return toStatus(ctx, s.log, err)
	}
	if err := s.journeyStore.SetJourneyPaused(ctx, j.ID, paused); err != nil {
		return toStatus(ctx, s.log, err)
	}
	if err := s.journeyer.RefreshPauses(ctx); err != nil {
		return toStatus(ctx, s.log, fmt.Errorf("the pause was recorded; applying it here failed: %w", err))
	}
	s.log.Info("journey: paused", "journey", j.ID, "paused", paused)
	return nil
}

// GetJourneyStats works out a journey's KPIs over its members.
func (s *Server) GetJourneyStats(ctx context.Context, req *nbapb.GetJourneyStatsRequest) (*nbapb.GetJourneyStatsResponse, error) {
	var c checker
	j := s.journey(&c, "journey_id", req.GetJourneyId())
	if t := req.GetAt(); t != nil && t.CheckValid() != nil {
		c.Add("at", "not a valid timestamp")
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	at := fromTS(req.GetAt())
	if at.IsZero() {
		at = time.Now()
	}
	st := decision.NewJourneyStats(j)
	err := s.eachMember(ctx, j, at, func(res *decision.JourneyResult, p *rules.Progress, _ string) error {
		st.Add(p, res.State, at)
		return nil
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.metrics.journeyStats(j, st)
	completion, conversion := st.Rates()
	out := &nbapb.GetJourneyStatsResponse{
		Members: st.Members, Entered: st.Entered, Active: st.Active, Completed: st.Completed, Converted: st.Converted,
		Exited: st.Exited, Expired: st.Expired, CompletionRate: completion, ConversionRate: conversion,
		EngagementAfterFieldP50Seconds: st.FieldPercentile(0.5).Seconds(),
		EngagementAfterFieldP90Seconds: st.FieldPercentile(0.9).Seconds(),
		FieldInteractions:              st.FieldInteractions,
	}
	for k := range j.Steps {
		out.Steps = append(out.Steps, &nbapb.JourneyStepStats{StepId: j.Steps[k].ID, AtStep: st.AtStep[k], Dropped: st.Dropped[k]})
	}
	return out, nil
}
