package decision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter/access"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
)

// ReceiptKind says what made a receipt.
type ReceiptKind uint8

const (
	KindUnspecified ReceiptKind = iota
	KindDecide                  // Decide
	KindBatchItem               // one recipient of DecideBatch
	KindCheckSend               // CheckSend (and each item of CheckSendBatch)
)

// Receipt is the record of one decision or pre-send check: what it was
// asked, what it was made from and what it answered. The log (the server's
// receipt writer and the store) keeps it, so that months later an auditor
// can see why a message went out, and Replay can make the decision again,
// to the bit, from the receipt alone and the definitions set it names.
//
// Its inputs are the recipient's state as the decision loaded it: the
// evidence of every gate's verdict is in it, by reference (the consent
// records in force and the ledger version they were read at, the touch
// ledger, the recent events, the operator's journey moves), and the
// definitions set, kept by its hash, holds the rest (the MLR approvals,
// the contact rules, the behaviour rules and journeys, the model).
type Receipt struct {
	Kind ReceiptKind
	// Principal is the authenticated caller's subject ("" without
	// authentication).
	Principal string
	// Build is the server's build id.
	Build string

	// Decide and DecideBatch items.
	Request Request
	Result  *Result

	// CheckSend.
	Send       SendRequest
	SendResult *SendResult
}

// ID is the receipt's decision id.
func (r *Receipt) ID() string {
	if r.SendResult != nil {
		return r.SendResult.DecisionID
	}
	if r.Result != nil {
		return r.Result.ID
	}
	return ""
}

// HCPID is the recipient the receipt is about.
func (r *Receipt) HCPID() string {
	if r.Kind == KindCheckSend {
		return r.Send.HCPID
	}
	return r.Request.HCPID
}

// Logged is when the decision was made, by the server's clock: its
// receipt is filed under it (the decision id carries it too).
func (r *Receipt) Logged() time.Time {
	if r.SendResult != nil {
		return r.SendResult.Now
	}
	if r.Result != nil {
		return r.Result.Now
	}
	return time.Time{}
}

// At is the decision time (a check's planned send time).
func (r *Receipt) At() time.Time {
	if r.SendResult != nil {
		return r.SendResult.At
	}
	if r.Result != nil {
		return r.Result.At
	}
	return time.Time{}
}

// DefinitionsVersion is the definitions set the decision was made with.
func (r *Receipt) DefinitionsVersion() string {
	if r.SendResult != nil {
		return r.SendResult.DefinitionsVersion
	}
	if r.Result != nil {
		return r.Result.DefinitionsVersion
	}
	return ""
}

// WithReceiptEncoder gives the engine the stored form of receipts, so that
// a CheckSend that books a touch writes its receipt with the booking, by
// the same script (contact.Booking.Receipt).
func WithReceiptEncoder(enc func(*Receipt) ([]byte, error)) Option {
	return func(e *Engine) { e.receiptEnc = enc }
}

// ErrNotReplayable is wrapped by Replay's errors when a receipt cannot be
// replayed exactly with this engine: made with another definitions set,
// or missing its inputs.
var ErrNotReplayable = errors.New("the decision cannot be replayed exactly")

// Replay makes a receipt's decision again: it recomputes it, with this
// engine, from the receipt's inputs alone (nothing is loaded, no clock is
// read), and returns what the decision is now computed to be. The engine
// must be built from the receipt's definitions set. The result is
// identical to the logged one (ranking, scores to the bit, suppressions,
// reasons) unless the receipt, the definitions or the code changed; the
// caller compares (Diff).
func (e *Engine) Replay(ctx context.Context, rc *Receipt) (*Result, *SendResult, error) {
	if v := rc.DefinitionsVersion(); v != e.defsVersion {
		return nil, nil, fmt.Errorf("replay: %w: it was made with definitions %s, this engine has %s", ErrNotReplayable, v, e.defsVersion)
	}
	return e.Rerun(ctx, rc)
}

// replaySend checks again what a pre-send check checked: the gates, and
// the earliest time the send would be allowed. It books nothing; what the
// logged check booked is carried over.
func (e *Engine) replaySend(req SendRequest, logged *SendResult) (*SendResult, error) {
	req.At = logged.At
	a, err := e.sendAction(&req)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	st := logged.Inputs
	res := &SendResult{DecisionID: logged.DecisionID, DefinitionsVersion: e.defsVersion, Action: a, At: logged.At,
		Now: logged.Now, Paused: logged.Paused, Inputs: st, Reservation: logged.Reservation, ReceiptStored: logged.ReceiptStored}
	dreq := Request{HCPID: req.HCPID, Caller: req.Caller, At: logged.At, Explain: true, Territories: req.Territories}
	prof := &st.Profile
	in := GateInput{Action: a, State: st, Request: &dreq, Now: logged.Now, paused: logged.Paused,
		Recipient: catalog.Recipient{Market: prof.Market, Specialty: prof.Specialty, Audience: prof.Audience}}
	res.Blocks = e.blocksAt(&in, logged.At)
	res.Allowed = len(res.Blocks) == 0
	if !res.Allowed {
		res.EarliestAllowed = e.earliestAllowed(&in, res.Blocks)
	}
	return res, nil
}

func principalOf(ctx context.Context) string {
	if p, ok := access.FromContext(ctx); ok {
		return p.Subject
	}
	return ""
}

// Allowance is what allowed an action at a time, given a recipient's
// state: the consent verdict, with the record that decided it (nil when
// the market's opt-out default allowed it, or nothing did), and the
// content's MLR approval. An auditor's evidence (GetDecision).
type Allowance struct {
	Action   *catalog.Action
	Consent  consent.Verdict
	Record   *consent.Record
	Approval catalog.Approval
}

// Allowance works out what allowed (or would allow) action actionID for
// the recipient of st at at, as the consent gate asks it; false for an
// action this engine's catalog does not have.
func (e *Engine) Allowance(st *recipient.State, actionID string, at time.Time) (Allowance, bool) {
	i, ok := e.catalog.Lookup(actionID)
	if !ok {
		return Allowance{}, false
	}
	a := &e.catalog.Actions[i]
	q := consent.Query{Channel: a.Channel, Purpose: a.Purpose, Topic: a.Topic, Address: st.Profile.Addresses[a.Channel],
		Market: st.Profile.Market, At: at}
	v := e.policy.Evaluate(&st.Consent, q)
	out := Allowance{Action: a, Consent: v, Approval: a.Approval}
	if v.Record >= 0 && v.Record < len(st.Consent.Records) {
		out.Record = &st.Consent.Records[v.Record]
	}
	return out, true
}

// Rerun makes a receipt's decision again with this engine, whatever
// definitions set the engine was built from: a dry run of a policy change
// over logged decisions ("what would these decisions have been under the
// new set?"). Replay is Rerun with the receipt's own set, and says so.
func (e *Engine) Rerun(ctx context.Context, rc *Receipt) (*Result, *SendResult, error) {
	switch rc.Kind {
	case KindDecide, KindBatchItem:
		r := rc.Result
		if r == nil || r.Inputs == nil {
			return nil, nil, fmt.Errorf("rerun: %w: the receipt has no inputs", ErrNotReplayable)
		}
		res, err := e.decide(ctx, rc.Request, &given{id: r.ID, at: r.At, now: r.Now, state: r.Inputs, paused: r.Paused})
		return res, nil, err
	case KindCheckSend:
		r := rc.SendResult
		if r == nil || r.Inputs == nil {
			return nil, nil, fmt.Errorf("rerun: %w: the receipt has no inputs", ErrNotReplayable)
		}
		res, err := e.replaySend(rc.Send, r)
		return nil, res, err
	}
	return nil, nil, fmt.Errorf("rerun: %w: unknown receipt kind", ErrNotReplayable)
}
