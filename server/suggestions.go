package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/internal/ordered"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// TerritoryIndex reads the recipients of territories a page at a time
// (redisstore.Store.TerritoryPage). The profile store serves the
// SuggestionService when it is one.
type TerritoryIndex interface {
	TerritoryPage(ctx context.Context, territories []string, after string, n int) ([]redisstore.TerritoryMember, string, error)
}

const (
	defaultSuggestionPage = 100
	maxSuggestionPage     = 500
	// suggestionDayStart is when, in the HCP's time zone, a day's
	// suggestions are decided for (or now, if later): the start of a
	// working day, so that a day planned ahead is not decided in the
	// night's quiet hours.
	suggestionDayStart = 9 * time.Hour
	// suggestionDaysAhead is how far ahead a day may be asked for.
	suggestionDaysAhead = 31
	dayLayout           = "2006-01-02"
)

// ListSuggestions decides, for a page of the HCPs of the caller's
// territories, each one's best action (DecideBatch's machinery: the same
// gates, a batch item's receipt each) and returns those with something to
// suggest, best first.
func (s *Server) ListSuggestions(ctx context.Context, req *nbapb.ListSuggestionsRequest) (*nbapb.ListSuggestionsResponse, error) {
	ix, ok := s.profiles.(TerritoryIndex)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "suggestions need the territory index of the store")
	}
	after, day, err := s.validateListSuggestions(req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	territories, err := suggestionTerritories(ctx, req.GetTerritory())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultSuggestionPage
	}
	members, next, err := ix.TerritoryPage(ctx, territories, after, size)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	now := s.clock().UTC()
	if day.IsZero() {
		day = now
	}
	// Each HCP's decision time and expiry, in their time zone.
	type item struct {
		id      string
		at      time.Time // zero: now
		expires time.Time
	}
	items := make([]item, 0, len(members))
	zones := map[string]*time.Location{}
	for _, m := range members {
		loc, ok := zones[m.TimeZone]
		if !ok {
			if loc, _ = time.LoadLocation(m.TimeZone); m.TimeZone == "" || loc == nil {
				loc = time.UTC
			}
			zones[m.TimeZone] = loc
		}
		d := day
		if req.GetDay() == "" {
			d = now.In(loc) // today, where they are
		}
		start := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
		expires := start.AddDate(0, 0, 1)
		if !expires.After(now) {
			continue // the day is over there
		}
		at := start.Add(suggestionDayStart)
		if !at.After(now) {
			at = time.Time{}
		}
		items = append(items, item{id: m.ID, at: at.UTC(), expires: expires.UTC()})
	}
	results := make([]batchResult, len(items))
	decide := func(ctx context.Context, i int) {
		dreq := decision.Request{HCPID: items[i].id, Limit: 1, CandidateSet: req.GetCandidateSet(), Explain: true,
			At: items[i].at, Caller: arbiter.CallerRepTool}
		callerFromIdentity(ctx, &dreq)
		// Scoped to the territories listed: an HCP the index still holds
		// but whose profile moved away is answered as unknown.
		dreq.Territories = territories
		s.decideInto(ctx, dreq, &results[i])
	}
	var out []*nbapb.Suggestion
	send := func(i int) error {
		r := &results[i]
		switch {
		case errors.Is(r.err, arbiter.ErrNotFound):
			return nil // moved out of the territory, or erased, since the index was read
		case errors.Is(r.err, arbiter.ErrCorrupt):
			// One unreadable recipient must not fail every page of the
			// territory: left out, and logged without the id.
			s.log.WarnContext(ctx, "suggestions: a recipient's stored state does not decode; left out of the page", "err", "corrupt")
			return nil
		case r.err != nil:
			return toStatus(ctx, s.log, r.err)
		case len(r.res.Recommendations) == 0:
			return nil
		}
		rec := &r.res.Recommendations[0]
		a := rec.Action
		sg := &nbapb.Suggestion{DecisionId: r.res.ID, HcpId: items[i].id, ActionId: a.ID, Title: decision.Title(a),
			Reason: rec.Reason, Channel: toChannel(a.Channel), ExpiresAt: ts(items[i].expires), DecisionTime: ts(r.res.At),
			Score: rec.Score, ContentId: a.ContentID, Topic: a.Topic}
		if rec.Journey != nil {
			sg.Journey = journeyStep(rec.Journey)
		}
		out = append(out, sg)
		r.res, r.resp = nil, nil
		return nil
	}
	if err := ordered.Run(ctx, len(items), batchConcurrency, batchAhead, decide, send); err != nil {
		if err == ctx.Err() {
			return nil, toStatus(ctx, s.log, err)
		}
		return nil, err
	}
	rankSuggestions(out)
	resp := &nbapb.ListSuggestionsResponse{Suggestions: out}
	if req.GetDay() != "" {
		resp.Day = day.Format(dayLayout)
	}
	if next != "" {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return resp, nil
}

// rankSuggestions orders a page's suggestions by score, best first (then
// by HCP id), and gives each its rank and priority: HIGH for the top
// third, MEDIUM for the middle one, LOW for the rest.
func rankSuggestions(out []*nbapb.Suggestion) {
	slices.SortStableFunc(out, func(a, b *nbapb.Suggestion) int {
		if c := cmp.Compare(b.GetScore(), a.GetScore()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetHcpId(), b.GetHcpId())
	})
	n := len(out)
	for i, sg := range out {
		sg.Rank = int32(i + 1)
		switch {
		case 3*i < n:
			sg.Priority = nbapb.SuggestionPriority_SUGGESTION_PRIORITY_HIGH
		case 3*i < 2*n:
			sg.Priority = nbapb.SuggestionPriority_SUGGESTION_PRIORITY_MEDIUM
		default:
			sg.Priority = nbapb.SuggestionPriority_SUGGESTION_PRIORITY_LOW
		}
	}
}

// validateListSuggestions checks the request and returns the HCP id the
// page starts after and the day asked for (zero: today, per HCP).
func (s *Server) validateListSuggestions(req *nbapb.ListSuggestionsRequest) (after string, day time.Time, err error) {
	var c checker
	if t := req.GetTerritory(); t != "" && !validTerritory(t) {
		c.Add("territory", "must be 1 to 64 letters, digits, '_' or '-'")
	}
	if n := req.GetPageSize(); n < 0 || n > maxSuggestionPage {
		c.Add("page_size", fmt.Sprintf("must be 0 to %d, got %d", maxSuggestionPage, n))
	}
	if tok := req.GetPageToken(); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || recipient.ValidID(string(b)) != nil {
			c.Add("page_token", "is not a token this API gave")
		} else {
			after = string(b)
		}
	}
	if d := req.GetDay(); d != "" {
		var err error
		if day, err = time.Parse(dayLayout, d); err != nil {
			c.Add("day", "must be a date, YYYY-MM-DD")
		} else {
			// Yesterday by UTC may still be today somewhere.
			today := s.clock().UTC().Truncate(24 * time.Hour)
			switch {
			case day.Before(today.AddDate(0, 0, -1)):
				c.Add("day", "is past: the decision log has what was suggested then")
			case day.After(today.AddDate(0, 0, suggestionDaysAhead)):
				c.Add("day", fmt.Sprintf("must be at most %d days ahead", suggestionDaysAhead))
			}
		}
	}
	c.id("candidate_set", req.GetCandidateSet(), false)
	return after, day, c.Err()
}

// validTerritory reports whether t is 1 to 64 letters, digits, '_' or
// '-', as profiles' territories are.
func validTerritory(t string) bool {
	if len(t) == 0 || len(t) > 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// suggestionTerritories are the territories a ListSuggestions lists: an
// authenticated caller's token's (narrowed to the request's territory,
// which must be one of them; none when it names none), or without
// authentication the request's, which is then required.
func suggestionTerritories(ctx context.Context, asked string) ([]string, error) {
	p, ok := access.FromContext(ctx)
	if !ok {
		if asked == "" {
			return nil, status.Error(codes.InvalidArgument, "territory: is required without a token that names the caller's territories")
		}
		return []string{asked}, nil
	}
	if asked != "" {
		if !slices.Contains(p.Territories, asked) {
			return nil, status.Error(codes.PermissionDenied, "territory: not one of the caller's territories")
		}
		return []string{asked}, nil
	}
	// A token without territories lists nothing, as it decides for no one.
	return slices.Clone(p.Territories), nil
}

// catalogSource gives the catalog in use (the engine, or what follows the
// active definitions).
type catalogSource interface {
	Catalog() *catalog.Catalog
}

type engineSource interface {
	Engine() *decision.Engine
}

// action looks up a catalog action of the engine in use.
func (s *Server) action(id string) (*catalog.Action, bool) {
	var cat *catalog.Catalog
	switch d := s.decider.(type) {
	case catalogSource:
		cat = d.Catalog()
	case engineSource:
		if e := d.Engine(); e != nil {
			cat = e.Catalog()
		}
	}
	if cat == nil {
		return nil, false
	}
	i, ok := cat.Lookup(id)
	if !ok {
		return nil, false
	}
	return &cat.Actions[i], true
}

// SuggestionFeedback records a rep's feedback on a suggestion as an event
// on the HCP its decision names: COMPLETED, or DISMISSED with a reason (as
// not relevant, it holds the action back: decision.Dismissed).
func (s *Server) SuggestionFeedback(ctx context.Context, req *nbapb.SuggestionFeedbackRequest) (*nbapb.SuggestionFeedbackResponse, error) {
	if s.profiles == nil {
		return nil, status.Error(codes.Unimplemented, "feedback needs the profile store")
	}
	var c checker
	walkStrings(req.ProtoReflect(), "", &c)
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if id := req.GetDecisionId(); id == "" || len(id) > 200 {
		c.Add("decision_id", "is required: at most 200 bytes")
	}
	c.id("action_id", req.GetActionId(), true)
	var typ arbiter.EventType
	switch req.GetOutcome() {
	case nbapb.SuggestionOutcome_SUGGESTION_OUTCOME_COMPLETED:
		typ = arbiter.EventCompleted
	case nbapb.SuggestionOutcome_SUGGESTION_OUTCOME_DISMISSED:
		typ = arbiter.EventDismissed
	default:
		c.Add("outcome", "must be COMPLETED or DISMISSED")
	}
	reason := arbiter.DismissReason(req.GetDismissReason())
	switch {
	case typ == arbiter.EventDismissed && !reason.Valid():
		c.Add("dismiss_reason", "is required for a dismissal: NOT_RELEVANT, ALREADY_DONE or OTHER")
	case typ != arbiter.EventDismissed && req.GetDismissReason() != nbapb.DismissReason_DISMISS_REASON_UNSPECIFIED:
		c.Add("dismiss_reason", "is for a dismissal only")
	}
	if err := (recipient.Event{Type: arbiter.EventCompleted, Note: req.GetNote()}).ValidateAt(time.Now()); err != nil {
		var inv *arbiter.InvalidError
		if errors.As(err, &inv) {
			for _, v := range inv.Violations {
				if v.Field == "note" {
					c.Add("note", v.Description)
				}
			}
		}
	}
	if h := req.GetHcpId(); h != "" {
		c.hcpID("hcp_id", h)
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if s.dlog == nil || s.dlog.cfg.Key == nil {
		return nil, status.Error(codes.FailedPrecondition, "this server cannot open decision ids (it keeps no decision log)")
	}
	owner, _, err := s.dlog.cfg.Key.Open(req.GetDecisionId())
	if err != nil {
		return nil, toStatus(ctx, s.log, arbiter.Invalid("decision_id",
			"is not a decision of this deployment (or was made with another audit key)"))
	}
	if h := req.GetHcpId(); h != "" && h != owner {
		s.dlog.countLink(-1)
		return nil, toStatus(ctx, s.log, &arbiter.PreconditionError{Subject: "decision_id",
			Description: "is a decision for another recipient; nothing was recorded"})
	}
	if err := s.inCallerTerritory(ctx, owner); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	a, ok := s.action(req.GetActionId())
	if !ok {
		return nil, toStatus(ctx, s.log, arbiter.Invalid("action_id", "unknown action id"))
	}
	if err := s.suggested(ctx, req.GetDecisionId(), a.ID); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	at := s.clock().UTC()
	if t := req.GetOccurredAt(); t != nil {
		at = t.AsTime().UTC()
	}
	e := recipient.Event{ID: feedbackEventID(req), HCPID: owner, Type: typ, Channel: a.Channel, ActionID: a.ID,
		Topic: a.Topic, DecisionID: req.GetDecisionId(), OccurredAt: at, Purpose: a.Purpose, Note: req.GetNote()}
	if typ == arbiter.EventDismissed {
		e.Dismissal = reason
	}
	dup, err := s.profiles.ApplyEvent(ctx, e)
	if err != nil {
		var inv *arbiter.InvalidError
		if errors.As(err, &inv) {
			// The only field of the event the request gives as is.
			for i := range inv.Violations {
				if inv.Violations[i].Field == "occurred_at" {
					return nil, toStatus(ctx, s.log, arbiter.Invalid("occurred_at", inv.Violations[i].Description))
				}
			}
		}
		return nil, toStatus(ctx, s.log, err)
	}
	s.dlog.countLink(nbapb.DecisionLink_DECISION_LINK_VERIFIED)
	resp := &nbapb.SuggestionFeedbackResponse{HcpId: owner, Duplicate: dup}
	if e.Dismissal == arbiter.DismissNotRelevant {
		resp.SuppressedUntil = ts(at.Add(decision.DismissalPeriod))
	}
	return resp, nil
}

// suggested checks that the decision recommended the action, from its
// receipt: feedback is on what was suggested, so that a dismissal cannot
// hold back any other action for the recipient. A receipt still queued on
// this server is written first; one queued on another replica a moment
// ago may not be found yet (FAILED_PRECONDITION: retry).
func (s *Server) suggested(ctx context.Context, decisionID, actionID string) error {
	rc, err := s.receiptFor(ctx, decisionID)
	if errors.Is(err, arbiter.ErrNotFound) {
		if ferr := s.FlushDecisionLog(ctx); ferr == nil {
			rc, err = s.receiptFor(ctx, decisionID)
		}
	}
	switch {
	case errors.Is(err, arbiter.ErrNotFound):
		return &arbiter.PreconditionError{Subject: "decision_id", Description: "the decision's receipt is not in the decision log " +
			"(it may be on its way from another replica: retry; or the log is off, or the receipt expired); nothing was recorded"}
	case err != nil:
		return err
	}
	for _, r := range rc.GetDecided().GetRecommendations() {
		if r.GetActionId() == actionID {
			return nil
		}
	}
	return &arbiter.PreconditionError{Subject: "action_id", Description: "was not recommended by this decision; nothing was recorded"}
}

// inCallerTerritory answers a rep tool (a caller with the rep tool role
// and not the marketing platform's, as callerFromIdentity scopes) about a
// recipient outside its territories as Decide does: not found.
func (s *Server) inCallerTerritory(ctx context.Context, id string) error {
	p, ok := access.FromContext(ctx)
	if !ok || !p.Has(access.RepTool) || p.Has(access.MarketingPlatform) {
		return nil
	}
	prof, _, err := s.profiles.GetProfile(ctx, id)
	if err != nil {
		return err
	}
	for _, t := range prof.Territories {
		if slices.Contains(p.Territories, t) {
			return nil
		}
	}
	return fmt.Errorf("suggestion feedback: %w", arbiter.ErrNotFound)
}

// feedbackEventID is the event id of a feedback: the same feedback (on
// the same decision and action, with the same outcome and reason) is the
// same event, applied once.
func feedbackEventID(req *nbapb.SuggestionFeedbackRequest) string {
	h := sha256.Sum256([]byte(req.GetDecisionId() + "|" + req.GetActionId() + "|" + req.GetOutcome().String() + "|" +
		req.GetDismissReason().String()))
	return "suggestion-feedback-" + hex.EncodeToString(h[:16])
}
