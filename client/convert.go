package client

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// This file is the client's only contact with the generated protobuf types:
// every nbapb message is built or read here and nowhere else.
//
// The arbiter enums and the proto enums share their numbers (the proto
// names are the arbiter names in upper case behind a prefix);
// TestEnumNumbering holds them together, so the conversions are casts. A
// number this client does not know (a server built from a newer .proto)
// becomes the zero value, never some other valid value.

func decideRequestToPB(hcpID string, o DecideOptions) *nbapb.DecideRequest {
	ctx := &nbapb.DecisionContext{
		Caller:       nbapb.CallerKind(o.Caller),
		DecisionTime: timeToPB(o.At),
	}
	for _, c := range o.Channels {
		ctx.Channels = append(ctx.Channels, channelToPB(c))
	}
	return &nbapb.DecideRequest{
		HcpId:        hcpID,
		Limit:        int32Of(o.Limit),
		Candidates:   o.Candidates,
		CandidateSet: o.CandidateSet,
		Context:      ctx,
		Explain:      o.Explain,
	}
}

func decisionFromPB(m *nbapb.DecideResponse) *Decision {
	d := &Decision{
		ID:                 m.GetDecisionId(),
		At:                 timeFromPB(m.GetDecisionTime()),
		ModelVersion:       m.GetModelVersion(),
		CatalogVersion:     m.GetCatalogVersion(),
		DefinitionsVersion: m.GetDefinitionsVersion(),
		Persona:            m.GetPersona(),
	}
	if rs := m.GetRecommendations(); len(rs) > 0 {
		d.Recommendations = make([]Recommendation, len(rs))
		for i, r := range rs {
			d.Recommendations[i] = recommendationFromPB(r)
		}
	}
	if ss := m.GetSuppressed(); len(ss) > 0 {
		d.Suppressed = make([]Suppression, len(ss))
		for i, s := range ss {
			d.Suppressed[i] = Suppression{
				ActionID: s.GetActionId(),
				Reason:   suppressionReasonFromPB(s.GetReason()),
				Detail:   s.GetDetail(),
				ClearsAt: timeFromPB(s.GetClearsAt()),
			}
		}
	}
	return d
}

func recommendationFromPB(m *nbapb.Recommendation) Recommendation {
	r := Recommendation{
		Rank:          int(m.GetRank()),
		ActionID:      m.GetActionId(),
		Channel:       channelFromPB(m.GetChannel()),
		ContentID:     m.GetContentId(),
		Topic:         m.GetTopic(),
		Purpose:       purposeFromPB(m.GetPurpose()),
		Score:         m.GetScore(),
		Propensity:    m.GetPropensity(),
		Value:         m.GetValue(),
		ContextWeight: m.GetContextWeight(),
		Reason:        m.GetReason(),
		Rules:         m.GetRules(),
	}
	if js := m.GetJourney(); js != nil {
		r.Journey = &JourneyStep{JourneyID: js.GetJourneyId(), JourneyName: js.GetJourneyName(), StepID: js.GetStepId(),
			Step: int(js.GetStep()), Description: js.GetDescription(), OffRampID: js.GetOffRampId()}
	}
	if cs := m.GetContributions(); len(cs) > 0 {
		r.Contributions = make([]Contribution, len(cs))
		for i, c := range cs {
			r.Contributions[i] = Contribution{Feature: c.GetFeature(), Weight: c.GetWeight()}
		}
	}
	return r
}

// suppressionReasonFromPB returns r's name without its prefix: the
// SuppressionReason constants are those names, so the proto's enum is the
// only table, and a reason added to the API after this client was built
// still arrives by name (or, unknown to this client's proto, by number).
func suppressionReasonFromPB(r nbapb.SuppressionReason) SuppressionReason {
	return SuppressionReason(strings.TrimPrefix(r.String(), "SUPPRESSION_REASON_"))
}

func eventToPB(e Event) *nbapb.Event {
	return &nbapb.Event{
		EventId:       e.ID,
		HcpId:         e.HCPID,
		Type:          nbapb.EventType(e.Type),
		Channel:       channelToPB(e.Channel),
		ActionId:      e.ActionID,
		Topic:         e.Topic,
		DecisionId:    e.DecisionID,
		OccurredAt:    timeToPB(e.OccurredAt),
		Purpose:       nbapb.Purpose(e.Purpose),
		MessageId:     e.MessageID,
		ReservationId: e.ReservationID,
	}
}

func sendCheckToPB(c SendCheck) *nbapb.CheckSendRequest {
	return &nbapb.CheckSendRequest{
		HcpId: c.HCPID, ActionId: c.ActionID, Channel: channelToPB(c.Channel), ContentId: c.ContentID,
		PlannedAt: timeToPB(c.PlannedAt), Reserve: c.Reserve, IdempotencyKey: c.IdempotencyKey,
		Caller: nbapb.CallerKind(c.Caller),
	}
}

func sendVerdictFromPB(r *nbapb.CheckSendResponse) *SendVerdict {
	v := &SendVerdict{
		Allowed: r.GetAllowed(), EarliestAllowedAt: timeFromPB(r.GetEarliestAllowedAt()),
		ReservationID: r.GetReservationId(), ReservationExpiresAt: timeFromPB(r.GetReservationExpiresAt()),
		ReservationExisting: r.GetReservationExisting(), DecisionID: r.GetDecisionId(),
		DefinitionsVersion: r.GetDefinitionsVersion(), PlannedAt: timeFromPB(r.GetPlannedAt()), ActionID: r.GetActionId(),
	}
	if st := r.GetReservationState(); st != nbapb.ReservationState_RESERVATION_STATE_UNSPECIFIED {
		v.ReservationState = strings.TrimPrefix(st.String(), "RESERVATION_STATE_")
	}
	for _, b := range r.GetBlocks() {
		v.Blocks = append(v.Blocks, Suppression{ActionID: b.GetActionId(), Reason: suppressionReasonFromPB(b.GetReason()),
			Detail: b.GetDetail(), ClearsAt: timeFromPB(b.GetClearsAt())})
	}
	return v
}

func profileToPB(p Profile) *nbapb.Profile {
	m := &nbapb.Profile{
		HcpId:      p.HCPID,
		Specialty:  p.Specialty,
		Market:     p.Market,
		Audience:   nbapb.Audience(p.Audience),
		Segment:    p.Segment,
		TimeZone:   p.TimeZone,
		Attributes: p.Attributes, Territories: p.Territories,
		UpdatedAt: timeToPB(p.UpdatedAt),
	}
	// In channel order, so that equal profiles make equal messages.
	for _, c := range slices.Sorted(maps.Keys(p.Addresses)) {
		m.Addresses = append(m.Addresses, &nbapb.ChannelAddress{
			Channel:    channelToPB(c),
			AddressRef: p.Addresses[c],
		})
	}
	return m
}

func profileFromPB(m *nbapb.Profile) *Profile {
	p := &Profile{
		HCPID:      m.GetHcpId(),
		Specialty:  m.GetSpecialty(),
		Market:     m.GetMarket(),
		Audience:   audienceFromPB(m.GetAudience()),
		Segment:    m.GetSegment(),
		TimeZone:   m.GetTimeZone(),
		Attributes: m.GetAttributes(), Territories: m.GetTerritories(), UpdatedBy: m.GetUpdatedBy(),
		UpdatedAt: timeFromPB(m.GetUpdatedAt()),
	}
	for _, a := range m.GetAddresses() {
		if c := channelFromPB(a.GetChannel()); c.Valid() {
			if p.Addresses == nil {
				p.Addresses = make(map[arbiter.Channel]string)
			}
			p.Addresses[c] = a.GetAddressRef()
		}
	}
	return p
}

func countersFromPB(m *nbapb.Counters) *Counters {
	c := &Counters{
		Topics:         m.GetTopics(),
		LastEngagement: timeFromPB(m.GetLastEngagement()),
	}
	for _, cc := range m.GetChannels() {
		if ch := channelFromPB(cc.GetChannel()); ch.Valid() {
			if c.Channels == nil {
				c.Channels = make(map[arbiter.Channel]ChannelCounters)
			}
			c.Channels[ch] = ChannelCounters{
				Engagement:  cc.GetEngagement(),
				Sent:        cc.GetSent(),
				LastContact: timeFromPB(cc.GetLastContact()),
			}
		}
	}
	return c
}

func consentRecordToPB(r ConsentRecord) *nbapb.ConsentRecord {
	return &nbapb.ConsentRecord{
		Channel:       channelToPB(r.Channel),
		Purpose:       nbapb.Purpose(r.Purpose),
		Topic:         r.Topic,
		AddressRef:    r.AddressRef,
		Status:        consentStatusToPB(r.Status),
		CapturedAt:    timeToPB(r.CapturedAt),
		ExpiresAt:     timeToPB(r.ExpiresAt),
		Source:        r.Source,
		CapturedBy:    r.CapturedBy,
		NoticeVersion: r.NoticeVersion,
	}
}

func consentRecordFromPB(m *nbapb.ConsentRecord) ConsentRecord {
	return ConsentRecord{
		Channel:       channelFromPB(m.GetChannel()),
		Purpose:       purposeFromPB(m.GetPurpose()),
		Topic:         m.GetTopic(),
		AddressRef:    m.GetAddressRef(),
		Status:        consentStatusFromPB(m.GetStatus()),
		CapturedAt:    timeFromPB(m.GetCapturedAt()),
		ExpiresAt:     timeFromPB(m.GetExpiresAt()),
		Source:        m.GetSource(),
		CapturedBy:    m.GetCapturedBy(),
		NoticeVersion: m.GetNoticeVersion(),
	}
}

func consentRecordsToPB(rs []ConsentRecord) []*nbapb.ConsentRecord {
	if len(rs) == 0 {
		return nil
	}
	out := make([]*nbapb.ConsentRecord, len(rs))
	for i, r := range rs {
		out[i] = consentRecordToPB(r)
	}
	return out
}

func consentRecordsFromPB(ms []*nbapb.ConsentRecord) []ConsentRecord {
	if len(ms) == 0 {
		return nil
	}
	out := make([]ConsentRecord, len(ms))
	for i, m := range ms {
		out[i] = consentRecordFromPB(m)
	}
	return out
}

func consentStatusToPB(s ConsentStatus) nbapb.ConsentStatus {
	switch s {
	case ConsentOptIn:
		return nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN
	case ConsentOptOut:
		return nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT
	case ConsentPending:
		return nbapb.ConsentStatus_CONSENT_STATUS_PENDING
	case ConsentBarred:
		return nbapb.ConsentStatus_CONSENT_STATUS_BARRED
	case ConsentCleared:
		return nbapb.ConsentStatus_CONSENT_STATUS_CLEARED
	}
	return nbapb.ConsentStatus_CONSENT_STATUS_UNSPECIFIED
}

func consentStatusFromPB(s nbapb.ConsentStatus) ConsentStatus {
	switch s {
	case nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN:
		return ConsentOptIn
	case nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT:
		return ConsentOptOut
	case nbapb.ConsentStatus_CONSENT_STATUS_PENDING:
		return ConsentPending
	case nbapb.ConsentStatus_CONSENT_STATUS_BARRED:
		return ConsentBarred
	case nbapb.ConsentStatus_CONSENT_STATUS_CLEARED:
		return ConsentCleared
	}
	return ""
}

func setConsentRequestToPB(hcpID string, r ConsentRecord, markComplete bool) *nbapb.SetConsentRequest {
	return &nbapb.SetConsentRequest{
		HcpId:        hcpID,
		Record:       consentRecordToPB(r),
		MarkComplete: markComplete,
	}
}

func ledgerEntryFromPB(m *nbapb.LedgerEntry) LedgerEntry {
	return LedgerEntry{
		Seq:            m.GetSeq(),
		Record:         consentRecordFromPB(m.GetRecord()),
		RecordedAt:     timeFromPB(m.GetRecordedAt()),
		Applied:        m.GetApplied(),
		MarkedComplete: m.GetMarkedComplete(),
		Principal:      m.GetPrincipal(),
	}
}

func ledgerEntriesFromPB(ms []*nbapb.LedgerEntry) []LedgerEntry {
	if len(ms) == 0 {
		return nil
	}
	out := make([]LedgerEntry, len(ms))
	for i, m := range ms {
		out[i] = ledgerEntryFromPB(m)
	}
	return out
}

func consentStateFromPB(m *nbapb.GetConsentResponse) *ConsentState {
	return &ConsentState{
		Complete:   m.GetComplete(),
		CompleteAt: timeFromPB(m.GetCompleteAt()),
		Records:    consentRecordsFromPB(m.GetRecords()),
	}
}

func importItemToPB(it ImportItem) *nbapb.ImportProfilesRequest {
	return &nbapb.ImportProfilesRequest{
		Profile:         profileToPB(it.Profile),
		Consents:        consentRecordsToPB(it.Consents),
		ConsentComplete: it.ConsentComplete,
		CapturedBy:      it.CapturedBy,
	}
}

func channelToPB(c arbiter.Channel) nbapb.Channel { return nbapb.Channel(c) }

func channelFromPB(c nbapb.Channel) arbiter.Channel {
	return fromPB[arbiter.Channel](int32(c))
}

func purposeFromPB(p nbapb.Purpose) arbiter.Purpose {
	return fromPB[arbiter.Purpose](int32(p))
}

func audienceFromPB(a nbapb.Audience) arbiter.Audience {
	return fromPB[arbiter.Audience](int32(a))
}

// fromPB converts a proto enum number to the arbiter enum with the same
// number, or to the zero value when the arbiter enum has no such value.
func fromPB[E enum](n int32) E {
	if n <= 0 || n > math.MaxUint8 || !E(n).Valid() {
		return 0
	}
	return E(n)
}

// timeToPB maps the zero time to an absent timestamp (the zero time is
// outside the range a Timestamp may hold).
func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// timeFromPB maps an absent timestamp to the zero time; others come back in
// UTC.
func timeFromPB(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// int32Of converts n, saturating rather than wrapping, so that an
// out-of-range limit is refused by the server instead of becoming a
// different, valid one.
func int32Of(n int) int32 {
	return int32(max(math.MinInt32, min(n, math.MaxInt32)))
}
