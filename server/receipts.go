package server

import (
	"errors"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
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
	return receiptProtoAppend(nil, rc, nil, nil)
}

// receiptProtoAppend appends the stored form of a receipt to buf: the
// message receiptProtoWith makes, but for its inputs, marshalled, then
// the inputs (field 13) encoded directly (inputsProtoAppend). It decodes
// to the message receiptProtoWith makes (TestReceiptEncodingDecodesAsTheMessage).
func receiptProtoAppend(buf []byte, rc *decision.Receipt, decided *nbapb.DecideResponse, checked *nbapb.CheckSendResponse) ([]byte, error) {
	p, st := receiptProtoOf(rc, decided, checked)
	out, err := proto.MarshalOptions{}.MarshalAppend(buf, p)
	if err != nil || st == nil {
		return out, err
	}
	return appendMessage(out, receiptInputsField, func(b []byte) ([]byte, error) { return inputsProtoAppend(b, st) })
}

// receiptInputsField is DecisionReceipt.inputs.
const receiptInputsField = 13

// receiptProtoWith converts a receipt for storage and for the API; the
// answer the caller got, when given, is used as it is rather than
// converted again.
func receiptProtoWith(rc *decision.Receipt, decided *nbapb.DecideResponse, checked *nbapb.CheckSendResponse) *nbapb.DecisionReceipt {
	out, st := receiptProtoOf(rc, decided, checked)
	if st != nil {
		out.Inputs = inputsProto(st)
	}
	return out
}

// receiptProtoOf is receiptProtoWith without the inputs, and the
// recipient's state they are made from (nil: none).
func receiptProtoOf(rc *decision.Receipt, decided *nbapb.DecideResponse, checked *nbapb.CheckSendResponse) (*nbapb.DecisionReceipt, *recipient.State) {
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
		if r.Catalog != nil && len(r.CandidateIndexes) == len(q.Candidates) && len(q.Candidates) > 0 {
			d.Candidates, out.CandidateIndexes = nil, r.CandidateIndexes
		} else if idx, ok := indexesOf(r.Catalog, q.Candidates); ok {
			d.Candidates, out.CandidateIndexes = nil, idx
		}
		for _, ch := range q.Channels {
			d.Context.Channels = append(d.Context.Channels, toChannel(ch))
		}
		out.Decide = d
		if decided == nil {
			decided = decideResponse(r)
		}
		out.Decided = loggedAnswer(decided, out)
		out.PackedSuppressed = packSuppressions(r.Suppressed, q.Explain, r.Catalog != nil)
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
	return out, st
}

// inputsHead is a recipient's inputs but for their lists of touches,
// recent events, journey moves and dismissals.
func inputsHead(st *recipient.State) *nbapb.RecipientInputs {
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
	return in
}

func inputsProto(st *recipient.State) *nbapb.RecipientInputs {
	in := inputsHead(st)
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
	for _, d := range st.Dismissals {
		in.Dismissals = append(in.Dismissals, &nbapb.LoggedDismissal{ActionId: d.ActionID, At: ts(d.At), Principal: d.Principal})
	}
	return in
}

// inputsProtoAppend appends to b the encoding of inputsProto(st): its
// profile, counters, consent and single fields marshalled from their
// messages, then its touches, recent events, journey moves and
// dismissals (most of a recipient's state, a message and timestamps each
// in inputsProto) encoded with protowire, which proto's decoding takes
// in any order. Strings are checked as proto.Marshal checks them (valid
// UTF-8).
func inputsProtoAppend(b []byte, st *recipient.State) ([]byte, error) {
	in := inputsHead(st)
	b, err := proto.MarshalOptions{}.MarshalAppend(b, in)
	if err != nil {
		return b, err
	}
	var bad bool
	str := func(b []byte, num protowire.Number, v string) []byte {
		if v == "" {
			return b
		}
		if !utf8.ValidString(v) {
			bad = true
		}
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
	}
	for i := range st.Touches.Touches {
		t := &st.Touches.Touches[i]
		b, _ = appendMessage(b, 9, func(b []byte) ([]byte, error) {
			b = appendTimestamp(b, 1, t.At)
			b = appendEnum(b, 2, int32(toChannel(t.Channel)))
			b = appendEnum(b, 3, int32(t.Purpose))
			b = str(b, 4, t.Topic)
			b = str(b, 5, t.ActionID)
			b = str(b, 6, t.MessageID)
			if int(t.State) < len(reservationStates) {
				b = appendEnum(b, 7, int32(reservationStates[t.State]))
			}
			b = str(b, 8, t.ReservationID)
			return appendTimestamp(b, 9, t.ExpiresAt), nil
		})
	}
	for i := range st.Recent {
		e := &st.Recent[i]
		b, _ = appendMessage(b, 11, func(b []byte) ([]byte, error) {
			b = appendTimestamp(b, 1, e.At)
			b = appendEnum(b, 2, int32(e.Type))
			b = appendEnum(b, 3, int32(toChannel(e.Channel)))
			b = str(b, 4, e.ActionID)
			b = str(b, 5, e.Topic)
			return appendEnum(b, 6, int32(e.Purpose)), nil
		})
	}
	for i := range st.JourneyOverrides {
		o := &st.JourneyOverrides[i]
		b, _ = appendMessage(b, 12, func(b []byte) ([]byte, error) {
			b = str(b, 1, o.Journey)
			b = str(b, 2, o.Step)
			b = appendTimestamp(b, 3, o.At)
			return str(b, 4, o.Principal), nil
		})
	}
	for i := range st.Dismissals {
		d := &st.Dismissals[i]
		b, _ = appendMessage(b, 15, func(b []byte) ([]byte, error) {
			b = str(b, 1, d.ActionID)
			b = appendTimestamp(b, 2, d.At)
			return str(b, 3, d.Principal), nil
		})
	}
	if bad {
		return b, errors.New("a receipt's string field contains invalid UTF-8")
	}
	return b, nil
}

// appendMessage appends message field num, its content appended by fn,
// to b: the length is given a byte, and the content moved along when it
// needs more.
func appendMessage(b []byte, num protowire.Number, fn func([]byte) ([]byte, error)) ([]byte, error) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	at := len(b)
	b, err := fn(append(b, 0))
	n := len(b) - at - 1
	if k := protowire.SizeVarint(uint64(n)); k == 1 {
		b[at] = byte(n)
	} else {
		b = append(b, make([]byte, k-1)...)
		copy(b[at+k:], b[at+1:at+1+n])
		protowire.AppendVarint(b[:at], uint64(n))
	}
	return b, err
}

// appendTimestamp appends ts(t) as field num (nothing for the zero
// time), as timestamppb.New makes it.
func appendTimestamp(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	sec, ns := t.Unix(), int32(t.Nanosecond())
	size := 0
	if sec != 0 {
		size += 1 + protowire.SizeVarint(uint64(sec))
	}
	if ns != 0 {
		size += 1 + protowire.SizeVarint(uint64(ns))
	}
	b = protowire.AppendVarint(protowire.AppendTag(b, num, protowire.BytesType), uint64(size))
	if sec != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), uint64(sec))
	}
	if ns != 0 {
		b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), uint64(ns))
	}
	return b
}

// appendEnum appends an enum (or int32) field, omitted when zero.
func appendEnum(b []byte, num protowire.Number, v int32) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(int64(v)))
}

// errUnreadableConsent stands, in a decoded receipt, for the error that
// made the logged decision's consent unreadable.
var errUnreadableConsent = errors.New("consent: unreadable when the decision was made")

// loggedAnswer is the stored form of answer d in receipt p: d without its
// suppressions (packed apart). It keeps the decision id, definitions
// version and decision time, although p has them too: the previous
// release reads a stored answer as it is, and replays compare them, so
// a receipt written without them (~100 bytes) would replay as different
// there, during a rolling upgrade and after a rollback. The
// recommendations are shared, not copied.
func loggedAnswer(d *nbapb.DecideResponse, _ *nbapb.DecisionReceipt) *nbapb.DecideResponse {
	return &nbapb.DecideResponse{DecisionId: d.GetDecisionId(), Recommendations: d.GetRecommendations(),
		ModelVersion: d.GetModelVersion(), DecisionTime: d.GetDecisionTime(), CatalogVersion: d.GetCatalogVersion(),
		DefinitionsVersion: d.GetDefinitionsVersion(), Persona: d.GetPersona()}
}

// withAnswerIdentity puts back in a stored answer its identity where a
// receipt was stored without it (by a development build that left it out
// as the receipt's own); receipts stored with it are as they were.
func withAnswerIdentity(p *nbapb.DecisionReceipt) {
	d := p.GetDecided()
	if d == nil {
		return
	}
	if d.DecisionId == "" {
		d.DecisionId = p.GetDecisionId()
	}
	if d.DefinitionsVersion == "" {
		d.DefinitionsVersion = p.GetDefinitionsVersion()
	}
	if d.DecisionTime == nil && p.GetDecisionTime() != nil {
		d.DecisionTime = &timestamppb.Timestamp{Seconds: p.GetDecisionTime().GetSeconds(), Nanos: p.GetDecisionTime().GetNanos()}
	}
}

// indexesOf is ids as indexes in cat; false when cat is nil or lacks one.
func indexesOf(cat *catalog.Catalog, ids []string) ([]int32, bool) {
	if cat == nil || len(ids) == 0 {
		return nil, false
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		j, ok := cat.Lookup(id)
		if !ok {
			return nil, false
		}
		out[i] = int32(j)
	}
	return out, true
}

// packSuppressions is the stored form of a decision's suppressions: with
// byIndex, the actions as their indexes in the decision's catalog.
func packSuppressions(sups []decision.Suppression, explain, byIndex bool) *nbapb.PackedSuppressions {
	if len(sups) == 0 {
		return nil
	}
	p := &nbapb.PackedSuppressions{Reasons: make([]nbapb.SuppressionReason, len(sups)),
		ClearsAtSeconds: make([]int64, len(sups)), ClearsAtNanos: make([]int32, len(sups))}
	if byIndex {
		p.ActionIndexes = make([]int32, len(sups))
	} else {
		p.ActionIds = make([]string, len(sups))
	}
	if explain {
		p.Details = make([]string, len(sups))
	}
	var lastReason decision.Reason
	lastCode := nbapb.SuppressionReason_SUPPRESSION_REASON_UNSPECIFIED
	for i := range sups {
		s := &sups[i]
		if s.Reason != lastReason {
			lastReason, lastCode = s.Reason, reasonCode(s.Reason)
		}
		if byIndex {
			p.ActionIndexes[i] = s.Index
		} else {
			p.ActionIds[i] = s.ActionID
		}
		p.Reasons[i] = lastCode
		if !s.ClearsAt.IsZero() {
			p.ClearsAtSeconds[i], p.ClearsAtNanos[i] = s.ClearsAt.Unix(), int32(s.ClearsAt.Nanosecond())
		}
		if explain {
			p.Details[i] = s.Detail
		}
	}
	return p
}

// unpack turns a stored receipt into the API's form: its packed
// suppressions into its answer's, as the caller got them, and its
// candidates' indexes into their ids, in cat, the catalog of the
// receipt's definitions set. Without cat, a receipt stored by index stays
// packed (the ids are not known: the set is no longer kept).
func unpack(p *nbapb.DecisionReceipt, cat *catalog.Catalog) error {
	ps := p.GetPackedSuppressed()
	byIndex := len(ps.GetActionIndexes()) > 0 || len(p.GetCandidateIndexes()) > 0
	if byIndex && cat == nil {
		return nil
	}
	name := func(i int32) (string, bool) {
		if i < 0 || int(i) >= len(cat.Actions) {
			return "", false
		}
		return cat.Actions[i].ID, true
	}
	if idx := p.GetCandidateIndexes(); len(idx) > 0 {
		if p.GetDecide() == nil {
			return errors.New("the receipt's candidates do not decode")
		}
		p.Decide.Candidates = make([]string, len(idx))
		for i, j := range idx {
			var ok bool
			if p.Decide.Candidates[i], ok = name(j); !ok {
				return errors.New("the receipt's candidates are not in its catalog")
			}
		}
		p.CandidateIndexes = nil
	}
	if ps == nil {
		return nil
	}
	n := len(ps.GetReasons())
	if (len(ps.GetActionIds()) != n && len(ps.GetActionIndexes()) != n) || len(ps.GetClearsAtSeconds()) != n ||
		len(ps.GetClearsAtNanos()) != n || (len(ps.GetDetails()) != 0 && len(ps.GetDetails()) != n) || p.GetDecided() == nil {
		return errors.New("the receipt's suppressions do not decode")
	}
	sups := make([]nbapb.Suppression, n)
	p.Decided.Suppressed = make([]*nbapb.Suppression, n)
	for i := range sups {
		s := &sups[i]
		if len(ps.GetActionIndexes()) == n {
			var ok bool
			if s.ActionId, ok = name(ps.GetActionIndexes()[i]); !ok {
				return errors.New("the receipt's suppressions are not in its catalog")
			}
		} else {
			s.ActionId = ps.GetActionIds()[i]
		}
		s.Reason = ps.GetReasons()[i]
		if sec, ns := ps.GetClearsAtSeconds()[i], ps.GetClearsAtNanos()[i]; sec != 0 || ns != 0 {
			s.ClearsAt = &timestamppb.Timestamp{Seconds: sec, Nanos: ns}
		}
		if len(ps.GetDetails()) == n {
			s.Detail = ps.GetDetails()[i]
		}
		p.Decided.Suppressed[i] = s
	}
	p.PackedSuppressed = nil
	return nil
}

// DecodeReceipt reads a stored receipt into the API's form, its actions
// named from the catalog of its definitions set, which catalogFor gives
// (nil: not kept; the receipt then stays packed, by index).
func DecodeReceipt(data []byte, catalogFor func(version string) *catalog.Catalog) (*nbapb.DecisionReceipt, error) {
	var p nbapb.DecisionReceipt
	if err := proto.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	withAnswerIdentity(&p)
	var cat *catalog.Catalog
	if catalogFor != nil {
		cat = catalogFor(p.GetDefinitionsVersion())
	}
	if err := unpack(&p, cat); err != nil {
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
	for _, d := range in.GetDismissals() {
		st.Dismissals = append(st.Dismissals, recipient.Dismissal{ActionID: d.GetActionId(), At: fromTS(d.GetAt()), Principal: d.GetPrincipal()})
	}
	return st
}

// ReceiptOf converts a stored receipt (DecodeReceipt) back into the
// engine's, for a replay or a dry run under another definitions set.
func ReceiptOf(p *nbapb.DecisionReceipt) (*decision.Receipt, error) { return receiptOf(p) }

// DecideAnswer is the API's answer for a decision.
func DecideAnswer(res *decision.Result) *nbapb.DecideResponse { return decideResponse(res) }

// CheckAnswer is the API's answer for a pre-send check.
func CheckAnswer(res *decision.SendResult) *nbapb.CheckSendResponse { return checkSendResponse(res) }
