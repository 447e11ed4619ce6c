package client

import (
	"context"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// SuggestionOptions picks the page of suggestions ListSuggestions asks
// for. The zero value asks for the first page of 100 HCPs of the caller's
// territories, for today.
type SuggestionOptions struct {
	// Territory narrows to one territory of the caller's token; required
	// without authentication.
	Territory string
	// Day is "YYYY-MM-DD": today (empty) or up to 31 days ahead.
	Day string
	// PageSize is HCPs per page, 1 to 500; 0 means 100.
	PageSize int
	// PageToken is a previous page's NextPageToken.
	PageToken string
	// CandidateSet names a candidate set of the catalog to choose from.
	CandidateSet string
}

// Priority is a suggestion's priority band: "HIGH", "MEDIUM" or "LOW".
type Priority string

// Suggestion is one HCP's next best action as a rep tool shows it; it is a
// decision (DecisionID), with its receipt in the decision log.
type Suggestion struct {
	DecisionID string          `json:"decision_id"`
	HCPID      string          `json:"hcp_id"`
	ActionID   string          `json:"action_id"`
	Title      string          `json:"title"`
	Reason     string          `json:"reason,omitempty"`
	Rank       int             `json:"rank"`
	Priority   Priority        `json:"priority"`
	Channel    arbiter.Channel `json:"channel"`
	ExpiresAt  time.Time       `json:"expires_at,omitzero"`
	// DecisionTime is the time it was decided for.
	DecisionTime time.Time    `json:"decision_time,omitzero"`
	Score        float64      `json:"score"`
	ContentID    string       `json:"content_id,omitempty"`
	Topic        string       `json:"topic,omitempty"`
	Journey      *JourneyStep `json:"journey,omitempty"`
}

// SuggestionPage is one page of ListSuggestions.
type SuggestionPage struct {
	// Suggestions are best first.
	Suggestions []Suggestion `json:"suggestions"`
	// NextPageToken asks for the next page; empty on the last.
	NextPageToken string `json:"next_page_token,omitempty"`
	// Day is the day asked for ("" for today).
	Day string `json:"day,omitempty"`
}

// ListSuggestions asks for one page of suggestions for the HCPs of the
// caller's territories.
func (c *Client) ListSuggestions(ctx context.Context, opts SuggestionOptions) (*SuggestionPage, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.suggest.ListSuggestions(ctx, &nbapb.ListSuggestionsRequest{Territory: opts.Territory, Day: opts.Day,
		PageSize: int32(opts.PageSize), PageToken: opts.PageToken, CandidateSet: opts.CandidateSet})
	if err != nil {
		return nil, err
	}
	out := &SuggestionPage{NextPageToken: resp.GetNextPageToken(), Day: resp.GetDay(),
		Suggestions: make([]Suggestion, len(resp.GetSuggestions()))}
	for i, m := range resp.GetSuggestions() {
		s := Suggestion{DecisionID: m.GetDecisionId(), HCPID: m.GetHcpId(), ActionID: m.GetActionId(), Title: m.GetTitle(),
			Reason: m.GetReason(), Rank: int(m.GetRank()), Channel: arbiter.Channel(m.GetChannel()),
			ExpiresAt: timeFromPB(m.GetExpiresAt()), DecisionTime: timeFromPB(m.GetDecisionTime()), Score: m.GetScore(),
			ContentID: m.GetContentId(), Topic: m.GetTopic()}
		if p := m.GetPriority(); p != nbapb.SuggestionPriority_SUGGESTION_PRIORITY_UNSPECIFIED {
			s.Priority = Priority(strings.TrimPrefix(p.String(), "SUGGESTION_PRIORITY_")) // a newer server's value stays a number
		}
		if js := m.GetJourney(); js != nil {
			s.Journey = &JourneyStep{JourneyID: js.GetJourneyId(), JourneyName: js.GetJourneyName(), StepID: js.GetStepId(),
				Step: int(js.GetStep()), Description: js.GetDescription(), OffRampID: js.GetOffRampId()}
		}
		out.Suggestions[i] = s
	}
	return out, nil
}

// Feedback is what a rep did with a suggestion (SuggestionFeedback): done,
// or dismissed with a reason.
type Feedback struct {
	// DecisionID and ActionID name the suggestion (required).
	DecisionID string
	ActionID   string
	// Completed says the rep did it; otherwise it is a dismissal, and
	// Dismissal says why (required then).
	Completed bool
	Dismissal arbiter.DismissReason
	// Note is the rep's words (optional, at most 256 bytes, no '|').
	Note string
	// HCPID, when given, must be the decision's HCP.
	HCPID string
	// OccurredAt is when; zero: the server's clock.
	OccurredAt time.Time
}

// FeedbackResult is what the server recorded.
type FeedbackResult struct {
	HCPID     string `json:"hcp_id"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// SuppressedUntil is, for a dismissal as not relevant, until when the
	// action is held back for the HCP.
	SuppressedUntil time.Time `json:"suppressed_until,omitzero"`
}

// SuggestionFeedback records a rep's feedback on a suggestion as an event
// on its HCP.
func (c *Client) SuggestionFeedback(ctx context.Context, f Feedback) (*FeedbackResult, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &nbapb.SuggestionFeedbackRequest{DecisionId: f.DecisionID, ActionId: f.ActionID, Note: f.Note, HcpId: f.HCPID,
		OccurredAt: timeToPB(f.OccurredAt), Outcome: nbapb.SuggestionOutcome_SUGGESTION_OUTCOME_DISMISSED,
		DismissReason: nbapb.DismissReason(f.Dismissal)}
	if f.Completed {
		req.Outcome = nbapb.SuggestionOutcome_SUGGESTION_OUTCOME_COMPLETED
	}
	resp, err := c.suggest.SuggestionFeedback(ctx, req)
	if err != nil {
		return nil, err
	}
	return &FeedbackResult{HCPID: resp.GetHcpId(), Duplicate: resp.GetDuplicate(),
		SuppressedUntil: timeFromPB(resp.GetSuppressedUntil())}, nil
}
