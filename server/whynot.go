package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"

	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Explainer asks every gate about candidates (decision.Engine.CheckAll,
// through the server program's follower), for WhyNot.
type Explainer interface {
	CheckAll(ctx context.Context, req decision.Request) ([]decision.CandidateCheck, string, error)
}

// WithExplainer serves WhyNot with x; without it WhyNot is Unimplemented.
func WithExplainer(x Explainer) Option { return func(s *Server) { s.explainer = x } }

// WithClock sets the clock by which WhyNot tells the present from the
// past (default time.Now; nil keeps it).
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.clock = now
		}
	}
}

// pastTolerance is how far before the server's clock a WhyNot time may be
// and still count as now (clocks of callers and servers differ a little).
const pastTolerance = time.Minute

// WhyNot says every reason an action may not go to a recipient at a time.
func (s *Server) WhyNot(ctx context.Context, req *nbapb.WhyNotRequest) (*nbapb.WhyNotResponse, error) {
	if s.explainer == nil {
		return s.UnimplementedDecisionServiceServer.WhyNot(ctx, req)
	}
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	c.id("action_id", req.GetActionId(), true)
	at := s.clock()
	past := false
	if t := req.GetAt(); t != nil {
		switch {
		case t.CheckValid() != nil || t.AsTime().Year() < 1970:
			c.Add("at", "not a valid timestamp")
		case t.AsTime().Before(at.Add(-pastTolerance)):
			past, at = true, t.AsTime()
		default:
			at = t.AsTime()
		}
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	dreq := decision.Request{HCPID: req.GetHcpId(), Candidates: []string{req.GetActionId()}, At: at, Explain: true}
	callerFromIdentity(ctx, &dreq)
	var (
		checks   []decision.CandidateCheck
		version  string
		evidence string
		err      error
	)
	if past {
		checks, version, evidence, err = s.checkAsOf(ctx, dreq)
	} else {
		checks, version, err = s.explainer.CheckAll(ctx, dreq)
	}
	if err != nil {
		// The one candidate is the request's action.
		return nil, toStatus(ctx, s.log, renameFields("candidates[0]", "action_id", err))
	}
	out := &nbapb.WhyNotResponse{At: ts(at), DefinitionsVersion: version, Allowed: true, AsOfDecisionId: evidence}
	var clears time.Time
	never := false
	for _, ch := range checks {
		for _, b := range ch.Blocks {
			out.Allowed = false
			out.Blocks = append(out.Blocks, &nbapb.Suppression{ActionId: ch.ActionID, Reason: reasonCode(b.Reason),
				Detail: b.Detail, ClearsAt: ts(b.ClearsAt)})
			if b.ClearsAt.IsZero() {
				never = true
			} else if b.ClearsAt.After(clears) {
				clears = b.ClearsAt
			}
		}
	}
	if !out.Allowed && !never {
		out.ClearsAt = ts(clears)
	}
	return out, nil
}

// checkAsOf asks every gate about req's action as the server knew the
// recipient at req.At, a past time: the recipient's state from their last
// logged decision at or before it (its receipt), with its definitions set
// and its clock; the consent as the ledger stood at that time exactly
// (entries recorded by then). It returns the checks, the set and the
// decision whose receipt it used.
func (s *Server) checkAsOf(ctx context.Context, req decision.Request) ([]decision.CandidateCheck, string, string, error) {
	if s.dlog == nil || s.consents == nil {
		return nil, "", "", arbiter.Invalid("at", "is in the past, and this server keeps no decision log to know what it knew then")
	}
	data, err := s.dlog.store.ReceiptBefore(ctx, req.HCPID, req.At)
	if errors.Is(err, arbiter.ErrNotFound) {
		return nil, "", "", fmt.Errorf("why not: %w: no decision of this recipient was logged before that time (within the retention)", arbiter.ErrNotFound)
	}
	if err != nil {
		return nil, "", "", err
	}
	p, err := s.decodeReceipt(ctx, data)
	if req.Territories != nil && (err != nil || p.GetInputs() == nil || !sharesAny(p.GetInputs().GetProfile().GetTerritories(), req.Territories)) {
		// A rep tool learns nothing of recipients outside its territories,
		// then or now: the same answer as for one never decided for.
		return nil, "", "", fmt.Errorf("why not: %w", arbiter.ErrNotFound)
	}
	if err != nil || p.GetInputs() == nil {
		return nil, "", "", fmt.Errorf("why not: %w", arbiter.ErrCorrupt)
	}
	rc, err := receiptOf(p)
	if err != nil {
		return nil, "", "", fmt.Errorf("why not: %w", arbiter.ErrCorrupt)
	}
	e, err := s.dlog.rep.EngineFor(ctx, p.GetDefinitionsVersion())
	if err != nil {
		return nil, "", "", fmt.Errorf("why not: %w: the definitions set in force then is no longer kept", arbiter.ErrNotFound)
	}
	st := inputsOf(p.GetHcpId(), p.GetInputs())
	asOf, ok := s.consents.(interface {
		ConsentAsOf(ctx context.Context, id string, t time.Time) (consent.State, error)
	})
	if !ok {
		return nil, "", "", arbiter.Invalid("at", "is in the past, and this server's store cannot read its consent ledger as of a time")
	}
	if st.Consent, err = asOf.ConsentAsOf(ctx, req.HCPID, req.At); err != nil {
		return nil, "", "", err
	}
	st.ConsentErr = nil
	var paused map[string]bool
	if rc.Result != nil {
		paused = rc.Result.Paused
	} else if rc.SendResult != nil {
		paused = rc.SendResult.Paused
	}
	checks, err := e.CheckGiven(req, st, req.At, paused)
	return checks, e.DefinitionsVersion(), p.GetDecisionId(), err
}

// sharesAny reports whether a and b have an element in common.
func sharesAny(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
