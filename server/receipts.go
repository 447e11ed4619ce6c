package server

import (
	"errors"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// The stored form of a decision receipt (decision.Receipt) is the API's
// DecisionReceipt message, in protobuf's binary encoding: what GetDecision
// returns and the export writes (as JSON) is what was stored, and a
// receipt's answer is the very DecideResponse or CheckSendResponse the
// caller got, so that a replay is compared with what was sent.
//
// Decoding is the exact inverse for everything a decision reads: times to
// the nanosecond, floats to the bit (TestReceiptRoundTrip).

var receiptKinds = [...]nbapb.ReceiptKind{
	decision.KindDecide:    nbapb.ReceiptKind_RECEIPT_KIND_DECIDE,
	decision.KindBatchItem: nbapb.ReceiptKind_RECEIPT_KIND_DECIDE_BATCH_ITEM,
	decision.KindCheckSend: nbapb.ReceiptKind_RECEIPT_KIND_CHECK_SEND,
}

// EncodeReceipt is a receipt's stored form.
func EncodeReceipt(rc *decision.Receipt) ([]byte, error) {
	return proto.Marshal(receiptProtoWith(rc, nil, nil))
}

// receiptProtoWith converts a receipt for storage and for the API; the
// answer the caller got, when given, is used as it is rather than
// converted again.
func receiptProtoWith(rc *decision.Receipt, decided *nbapb.DecideResponse, checked *nbapb.CheckSendResponse) *nbapb.DecisionReceipt {
	out := &nbapb.DecisionReceipt{
		DecisionId: rc.ID(), Kind: receiptKinds[rc.Kind], HcpId: rc.HCPID(), Principal: rc.Principal,
		Build: rc.Build, DefinitionsVersion: rc.DefinitionsVersion(), DecisionTime: ts(rc.At()),
	}
	var (
		st     *recipient.State
		paused map[string]bool
		terr   []string
	)
	switch {
	case rc.Kind == decision.KindCheckSend && rc.SendResult != nil:
		r := rc.SendResult
		st, paused, terr = r.Inputs, r.Paused, rc.Send.Territories
		out.ServerTime = ts(r.Now)
		q := rc.Send
		out.CheckSend = &nbapb.CheckSendRequest{HcpId: q.HCPID, ActionId: q.ActionID, Channel: toChannel(q.Channel),
			ContentId: q.ContentID, PlannedAt: ts(q.At), Reserve: q.Reserve, IdempotencyKey: q.IdempotencyKey,
			Caller: nbapb.CallerKind(q.Caller)}
		if out.Checked = checked; checked == nil {
			out.Checked = checkSendResponse(r)
		}
	case rc.Result != nil:
		r := rc.Result
		st, paused, terr = r.Inputs, r.Paused, rc.Request.Territories
		out.ServerTime = ts(r.Now)
		q := &rc.Request
		d := &nbapb.DecideRequest{HcpId: q.HCPID, Limit: int32(q.Limit), Candidates: q.Candidates,
			CandidateSet: q.CandidateSet, Explain: q.Explain,
			Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind(q.Caller), DecisionTime: ts(q.At)}}
		for _, ch := range q.Channels {
			d.Context.Channels = append(d.Context.Channels, toChannel(ch))
		}
		out.Decide = d
		if out.Decided = decided; decided == nil {
			out.Decided = decideResponse(r)
		}
	}
	if terr != nil {
		out.Territories, out.TerritoryScoped = terr, true
	}
	for id, on := range paused {
		if on {
			out.PausedJourneys = append(out.PausedJourneys, id)
		}
	}
	slices.Sort(out.PausedJourneys)
	if st != nil {
		out.Inputs = inputsProto(st)
	}
	return out
}

func inputsProto(st *recipient.State) *nbapb.RecipientInputs {
	c := &st.Counters
	in := &nbapb.RecipientInputs{
		Profile: toProfile(&st.Profile), Counters: toCounters(c), CountersAsOf: ts(c.AsOf),
		ConsentComplete: st.Consent.Complete, ConsentCompleteAt: ts(st.Consent.CompleteAt),
		ConsentVersion: st.Consent.Version, ConsentUnreadable: st.ConsentErr != nil,
		TouchesVersion: st.Touches.Version, TouchesHorizon: ts(st.Touches.Horizon), TouchesUnreadable: st.Touches.Unreadable,
	}
	in.Consent = make([]*nbapb.ConsentRecord, len(st.Consent.Records))
	for i := range st.Consent.Records {
		in.Consent[i] = toConsentRecord(&st.Consent.Records[i])
	}
	for i := range st.Touches.Touches {
		t := &st.Touches.Touches[i]
		lt := &nbapb.LoggedTouch{At: ts(t.At), Channel: toChannel(t.Channel), Purpose: nbapb.Purpose(t.Purpose),
			Topic: t.Topic, ActionId: t.ActionID, MessageId: t.MessageID, ReservationId: t.ReservationID,
			ExpiresAt: ts(t.ExpiresAt)}
		if int(t.State) < len(reservationStates) {
			lt.State = reservationStates[t.State]
		}
		in.Touches = append(in.Touches, lt)
	}
	for _, e := range st.Recent {
		in.RecentEvents = append(in.RecentEvents, &nbapb.LoggedEvent{At: ts(e.At), Type: nbapb.EventType(e.Type),
			Channel: toChannel(e.Channel), ActionId: e.ActionID, Topic: e.Topic, Purpose: nbapb.Purpose(e.Purpose)})
	}
	for _, o := range st.JourneyOverrides {
		in.JourneyMoves = append(in.JourneyMoves, &nbapb.LoggedJourneyMove{JourneyId: o.Journey, StepId: o.Step,
			At: ts(o.At), Principal: o.Principal})
	}
	return in
}

// errUnreadableConsent stands, in a decoded receipt, for the error that
// made the logged decision's consent unreadable.
var errUnreadableConsent = errors.New("consent: unreadable when the decision was made")

// DecodeReceipt reads a stored receipt.
func DecodeReceipt(data []byte) (*nbapb.DecisionReceipt, error) {
	var p nbapb.DecisionReceipt
	if err := proto.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// receiptOf converts a stored receipt back into the engine's, for a
// replay: the request, the inputs and the logged answer's identity. The
// logged answer itself stays in p, for comparison.
func receiptOf(p *nbapb.DecisionReceipt) (*decision.Receipt, error) {
	rc := &decision.Receipt{Principal: p.GetPrincipal(), Build: p.GetBuild()}
	var st *recipient.State
	if p.GetInputs() != nil {
		st = inputsOf(p.GetHcpId(), p.GetInputs())
	}
	paused := map[string]bool(nil)
	if len(p.GetPausedJourneys()) > 0 {
		paused = make(map[string]bool, len(p.GetPausedJourneys()))
		for _, id := range p.GetPausedJourneys() {
			paused[id] = true
		}
	}
	var terr []string
	if p.GetTerritoryScoped() {
		terr = append([]string{}, p.GetTerritories()...)
	}
	switch p.GetKind() {
	case nbapb.ReceiptKind_RECEIPT_KIND_DECIDE, nbapb.ReceiptKind_RECEIPT_KIND_DECIDE_BATCH_ITEM:
		rc.Kind = decision.KindDecide
		if p.GetKind() == nbapb.ReceiptKind_RECEIPT_KIND_DECIDE_BATCH_ITEM {
			rc.Kind = decision.KindBatchItem
		}
		if p.GetDecide() == nil {
			return nil, errors.New("the receipt has no request")
		}
		rc.Request = decideRequestFor(p.GetHcpId(), p.GetDecide())
		rc.Request.Limit = int(p.GetDecide().GetLimit()) // as logged, defaults applied
		rc.Request.Territories = terr
		rc.Result = &decision.Result{ID: p.GetDecisionId(), At: fromTS(p.GetDecisionTime()),
			DefinitionsVersion: p.GetDefinitionsVersion(), Inputs: st, Now: fromTS(p.GetServerTime()), Paused: paused}
	case nbapb.ReceiptKind_RECEIPT_KIND_CHECK_SEND:
		rc.Kind = decision.KindCheckSend
		q := p.GetCheckSend()
		if q == nil {
			return nil, errors.New("the receipt has no request")
		}
		rc.Send = decision.SendRequest{HCPID: q.GetHcpId(), ActionID: q.GetActionId(), Channel: fromChannel(q.GetChannel()),
			ContentID: q.GetContentId(), At: fromTS(q.GetPlannedAt()), Reserve: q.GetReserve(),
			IdempotencyKey: q.GetIdempotencyKey(), Caller: arbiter.CallerKind(q.GetCaller()), Territories: terr}
		r := &decision.SendResult{DecisionID: p.GetDecisionId(), DefinitionsVersion: p.GetDefinitionsVersion(),
			At: fromTS(p.GetDecisionTime()), Inputs: st, Now: fromTS(p.GetServerTime()), Paused: paused}
		if c := p.GetChecked(); c != nil && c.GetReservationId() != "" {
			r.Reservation = &decision.Reservation{ID: c.GetReservationId(), ExpiresAt: fromTS(c.GetReservationExpiresAt()),
				Existing: c.GetReservationExisting(), State: touchState(c.GetReservationState())}
		}
		rc.SendResult = r
	default:
		return nil, errors.New("the receipt's kind is unknown")
	}
	return rc, nil
}

func touchState(s nbapb.ReservationState) contact.TouchState {
	for st, v := range reservationStates {
		if v == s && st != 0 {
			return contact.TouchState(st)
		}
	}
	return 0
}

func inputsOf(hcpID string, in *nbapb.RecipientInputs) *recipient.State {
	st := &recipient.State{}
	if p := in.GetProfile(); p != nil {
		st.Profile = profile(p)
		st.Profile.UpdatedBy = p.GetUpdatedBy()
		if st.Profile.Attributes != nil {
			st.Profile.Attributes = maps.Clone(st.Profile.Attributes)
		}
	}
	st.Profile.HCPID = hcpID
	c := &st.Counters
	c.AsOf = fromTS(in.GetCountersAsOf())
	if pc := in.GetCounters(); pc != nil {
		c.LastEngagement = fromTS(pc.GetLastEngagement())
		if pc.GetTopics() != nil {
			c.Topics = maps.Clone(pc.GetTopics())
		}
		for _, cc := range pc.GetChannels() {
			if ch := fromChannel(cc.GetChannel()); ch.Valid() {
				c.Engagement[ch], c.Sent[ch], c.LastContact[ch] = cc.GetEngagement(), cc.GetSent(), fromTS(cc.GetLastContact())
			}
		}
	}
	st.Consent = consent.State{Complete: in.GetConsentComplete(), CompleteAt: fromTS(in.GetConsentCompleteAt()),
		Version: in.GetConsentVersion()}
	if len(in.GetConsent()) > 0 {
		st.Consent.Records = make([]consent.Record, len(in.GetConsent()))
		for i, r := range in.GetConsent() {
			st.Consent.Records[i] = consentRecord(r)
		}
	}
	if in.GetConsentUnreadable() {
		st.ConsentErr = errUnreadableConsent
	}
	st.Touches = contact.Ledger{Version: in.GetTouchesVersion(), Horizon: fromTS(in.GetTouchesHorizon()),
		Unreadable: in.GetTouchesUnreadable()}
	for _, t := range in.GetTouches() {
		st.Touches.Touches = append(st.Touches.Touches, contact.Touch{At: fromTS(t.GetAt()), Channel: fromChannel(t.GetChannel()),
			Purpose: arbiter.Purpose(t.GetPurpose()), Topic: t.GetTopic(), ActionID: t.GetActionId(), MessageID: t.GetMessageId(),
			State: touchState(t.GetState()), ReservationID: t.GetReservationId(), ExpiresAt: fromTS(t.GetExpiresAt())})
	}
	for _, e := range in.GetRecentEvents() {
		st.Recent = append(st.Recent, recipient.RecentEvent{At: fromTS(e.GetAt()), Type: arbiter.EventType(e.GetType()),
			Channel: fromChannel(e.GetChannel()), ActionID: e.GetActionId(), Topic: e.GetTopic(), Purpose: arbiter.Purpose(e.GetPurpose())})
	}
	for _, o := range in.GetJourneyMoves() {
		st.JourneyOverrides = append(st.JourneyOverrides, recipient.JourneyOverride{Journey: o.GetJourneyId(), Step: o.GetStepId(),
			At: fromTS(o.GetAt()), Principal: o.GetPrincipal()})
	}
	return st
}
