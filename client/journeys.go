package client

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// JourneyProgress is where a recipient stands in one journey.
type JourneyProgress struct {
	JourneyID   string `json:"journey_id"`
	JourneyName string `json:"journey_name"`
	// Status: "not_entered", "eligible", "active", "completed", "exited"
	// or "expired".
	Status string `json:"status"`
	// StepID and Step (1-based) are the next step (active, eligible).
	StepID string `json:"step_id,omitempty"`
	Step   int    `json:"step,omitempty"`
	// DueAt is when it is due; zero while it waits for WaitingFor.
	DueAt       time.Time         `json:"due_at,omitzero"`
	WaitingFor  arbiter.EventType `json:"waiting_for,omitempty"`
	EnteredAt   time.Time         `json:"entered_at,omitzero"`
	EndedAt     time.Time         `json:"ended_at,omitzero"`
	OffRampID   string            `json:"off_ramp_id,omitempty"`
	MovedBy     string            `json:"moved_by,omitempty"`
	Paused      bool              `json:"paused,omitempty"`
	Description string            `json:"description"`
}

var journeyStatus = map[nbapb.JourneyStatus]string{
	nbapb.JourneyStatus_JOURNEY_STATUS_NOT_ENTERED: "not_entered", nbapb.JourneyStatus_JOURNEY_STATUS_ELIGIBLE: "eligible",
	nbapb.JourneyStatus_JOURNEY_STATUS_ACTIVE: "active", nbapb.JourneyStatus_JOURNEY_STATUS_COMPLETED: "completed",
	nbapb.JourneyStatus_JOURNEY_STATUS_EXITED: "exited", nbapb.JourneyStatus_JOURNEY_STATUS_EXPIRED: "expired",
}

func journeyProgressFromPB(m *nbapb.JourneyProgress) JourneyProgress {
	return JourneyProgress{
		JourneyID: m.GetJourneyId(), JourneyName: m.GetJourneyName(), Status: journeyStatus[m.GetStatus()],
		StepID: m.GetStepId(), Step: int(m.GetStep()), DueAt: timeFromPB(m.GetDueAt()),
		WaitingFor: arbiter.EventType(m.GetWaitingFor()), EnteredAt: timeFromPB(m.GetEnteredAt()), EndedAt: timeFromPB(m.GetEndedAt()),
		OffRampID: m.GetOffRampId(), MovedBy: m.GetMovedBy(), Paused: m.GetPaused(), Description: m.GetDescription(),
	}
}

// JourneyProgress returns a recipient's progress in every journey, as a
// decision at `at` would see it (zero: now), and the persona it used.
func (c *Client) JourneyProgress(ctx context.Context, recipientID string, at time.Time) ([]JourneyProgress, string, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.journeys.GetJourneyProgress(ctx, &nbapb.GetJourneyProgressRequest{RecipientId: recipientID, At: timeToPB(at)})
	if err != nil {
		return nil, "", err
	}
	out := make([]JourneyProgress, len(resp.GetJourneys()))
	for i, p := range resp.GetJourneys() {
		out[i] = journeyProgressFromPB(p)
	}
	return out, resp.GetPersona(), nil
}

// Due is a recipient due for a journey step.
type Due struct {
	RecipientID string    `json:"recipient_id"`
	StepID      string    `json:"step_id"`
	Step        int       `json:"step"`
	DueAt       time.Time `json:"due_at"`
}

// ListDue calls fn with each member of a journey whose next step (stepID,
// or any when empty) is due by before (zero: now), as the server streams
// them. The stream has no client timeout; give ctx one.
func (c *Client) ListDue(ctx context.Context, journeyID, stepID string, before time.Time, fn func(Due) error) error {
	// Cancelled on return, so that a stream fn stops early is ended on the
	// server too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.journeys.ListDue(ctx, &nbapb.ListDueRequest{JourneyId: journeyID, StepId: stepID, Before: timeToPB(before)})
	if err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(Due{RecipientID: m.GetRecipientId(), StepID: m.GetStepId(), Step: int(m.GetStep()), DueAt: timeFromPB(m.GetDueAt())}); err != nil {
			return err
		}
	}
}

// MoveInJourney moves a recipient to a step of a journey (due at once), or
// out of it (stepID empty), and returns the progress it leads to.
func (c *Client) MoveInJourney(ctx context.Context, recipientID, journeyID, stepID string) (*JourneyProgress, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.journeys.MoveRecipient(ctx, &nbapb.MoveRecipientRequest{RecipientId: recipientID, JourneyId: journeyID,
		StepId: stepID, Exit: stepID == ""})
	if err != nil {
		return nil, err
	}
	p := journeyProgressFromPB(resp.GetProgress())
	return &p, nil
}

// PauseJourney pauses (or, with paused false, resumes) a journey for
// everyone.
func (c *Client) PauseJourney(ctx context.Context, journeyID string, paused bool) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var err error
	if paused {
		_, err = c.journeys.PauseJourney(ctx, &nbapb.PauseJourneyRequest{JourneyId: journeyID})
	} else {
		_, err = c.journeys.ResumeJourney(ctx, &nbapb.ResumeJourneyRequest{JourneyId: journeyID})
	}
	return err
}

// JourneyStats are a journey's KPIs (GetJourneyStats).
type JourneyStats struct {
	Members, Entered, Active, Completed, Converted, Exited, Expired int64
	CompletionRate, ConversionRate                                  float64
	Steps                                                           []JourneyStepStats
	EngagementAfterFieldP50, EngagementAfterFieldP90                time.Duration
	FieldInteractions                                               int64
}

// JourneyStepStats are one step's: members whose next step it is, and
// members who left with it next.
type JourneyStepStats struct {
	StepID          string
	AtStep, Dropped int64
}

// JourneyStats works out a journey's KPIs over its members at `at` (zero:
// now).
func (c *Client) JourneyStats(ctx context.Context, journeyID string, at time.Time) (*JourneyStats, error) {
	resp, err := c.journeys.GetJourneyStats(ctx, &nbapb.GetJourneyStatsRequest{JourneyId: journeyID, At: timeToPB(at)})
	if err != nil {
		return nil, err
	}
	out := &JourneyStats{
		Members: resp.GetMembers(), Entered: resp.GetEntered(), Active: resp.GetActive(), Completed: resp.GetCompleted(),
		Converted: resp.GetConverted(), Exited: resp.GetExited(), Expired: resp.GetExpired(),
		CompletionRate: resp.GetCompletionRate(), ConversionRate: resp.GetConversionRate(),
		EngagementAfterFieldP50: time.Duration(resp.GetEngagementAfterFieldP50Seconds() * float64(time.Second)),
		EngagementAfterFieldP90: time.Duration(resp.GetEngagementAfterFieldP90Seconds() * float64(time.Second)),
		FieldInteractions:       resp.GetFieldInteractions(),
	}
	for _, s := range resp.GetSteps() {
		out.Steps = append(out.Steps, JourneyStepStats{StepID: s.GetStepId(), AtStep: s.GetAtStep(), Dropped: s.GetDropped()})
	}
	return out, nil
}
