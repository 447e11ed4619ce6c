package server

import (
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// This file is the only place that converts between protobuf messages and
// domain types. The enums share their numbering with the domain's, which
// the tests check, so conversions are casts guarded by range checks.

func fromChannel(c nbapb.Channel) arbiter.Channel {
	if c < 0 || int(c) >= arbiter.NumChannels {
		return arbiter.ChannelUnspecified
	}
	return arbiter.Channel(c)
}

func toChannel(c arbiter.Channel) nbapb.Channel { return nbapb.Channel(c) }

func fromPurpose(p nbapb.Purpose) arbiter.Purpose {
	if p < 0 || int(p) >= arbiter.NumPurposes {
		return arbiter.PurposeUnspecified
	}
	return arbiter.Purpose(p)
}

func fromAudience(a nbapb.Audience) arbiter.Audience {
	if _, ok := nbapb.Audience_name[int32(a)]; !ok {
		return arbiter.AudienceUnspecified
	}
	return arbiter.Audience(a)
}

func fromCaller(k nbapb.CallerKind) arbiter.CallerKind {
	if k < 0 || int(k) >= arbiter.NumCallerKinds {
		return arbiter.CallerUnspecified
	}
	return arbiter.CallerKind(k)
}

func fromEventType(t nbapb.EventType) arbiter.EventType {
	if _, ok := nbapb.EventType_name[int32(t)]; !ok {
		return arbiter.EventUnspecified
	}
	return arbiter.EventType(t)
}

func fromStatus(s nbapb.ConsentStatus) consent.Status {
	if _, ok := nbapb.ConsentStatus_name[int32(s)]; !ok {
		return consent.StatusUnspecified
	}
	return consent.Status(s)
}

// reasonCodes maps each decision.Reason to the API's SuppressionReason by
// name: "no_consent" is SUPPRESSION_REASON_NO_CONSENT. It is made once from
// the generated enum, so the proto's enum is the only table: a gate's new
// reason needs one enum line there, and nothing here. A reason the proto
// lacks is sent as UNSPECIFIED (TestEveryReasonHasACode keeps that from
// happening to the engine's own).
var reasonCodes = func() map[decision.Reason]nbapb.SuppressionReason {
	m := make(map[decision.Reason]nbapb.SuppressionReason, len(nbapb.SuppressionReason_name))
	for code, name := range nbapb.SuppressionReason_name {
		if code != 0 {
			m[reasonOf(name)] = nbapb.SuppressionReason(code)
		}
	}
	return m
}()

const reasonPrefix = "SUPPRESSION_REASON_"

// reasonOf is the decision.Reason an enum name stands for.
func reasonOf(enumName string) decision.Reason {
	return decision.Reason(strings.ToLower(strings.TrimPrefix(enumName, reasonPrefix)))
}

// reasonCode is r's SuppressionReason (UNSPECIFIED when the proto lacks it).
func reasonCode(r decision.Reason) nbapb.SuppressionReason { return reasonCodes[r] }

// ts converts a time, mapping the zero time to nil (absent).
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// fromTS converts a timestamp, mapping nil to the zero time.
func fromTS(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func decideRequest(req *nbapb.DecideRequest) decision.Request {
	return decideRequestFor(req.GetHcpId(), req)
}

// decideRequestFor is the engine's request for hcpID with a Decide's or a
// DecideBatch's options.
func decideRequestFor(hcpID string, req decideOptions) decision.Request {
	r := decision.Request{
		HCPID:        hcpID,
		Limit:        int(req.GetLimit()),
		Candidates:   req.GetCandidates(),
		CandidateSet: req.GetCandidateSet(),
		Explain:      req.GetExplain(),
	}
	if r.Limit == 0 {
		r.Limit = defaultDecideLimit
	}
	if ctx := req.GetContext(); ctx != nil {
		r.Caller = fromCaller(ctx.GetCaller())
		r.At = fromTS(ctx.GetDecisionTime())
		for _, ch := range ctx.GetChannels() {
			r.Channels = append(r.Channels, fromChannel(ch))
		}
	}
	return r
}

func decideResponse(res *decision.Result) *nbapb.DecideResponse {
	out := &nbapb.DecideResponse{
		DecisionId:         res.ID,
		ModelVersion:       res.ModelVersion,
		CatalogVersion:     res.CatalogVersion,
		DefinitionsVersion: res.DefinitionsVersion,
		Persona:            res.Persona,
		DecisionTime:       ts(res.At),
		Recommendations:    make([]*nbapb.Recommendation, len(res.Recommendations)),
		Suppressed:         make([]*nbapb.Suppression, len(res.Suppressed)),
	}
	recs := make([]nbapb.Recommendation, len(res.Recommendations))
	for i := range res.Recommendations {
		r := &res.Recommendations[i]
		p := &recs[i]
		p.Rank = int32(r.Rank)
		p.ActionId = r.Action.ID
		p.Channel = toChannel(r.Action.Channel)
		p.ContentId = r.Action.ContentID
		p.Topic = r.Action.Topic
		p.Purpose = nbapb.Purpose(r.Action.Purpose)
		p.Score, p.Propensity, p.Value, p.ContextWeight = r.Score, r.Propensity, r.Value, r.ContextWeight
		p.Reason = r.Reason
		p.Rules = r.Rules
		if r.Journey != nil {
			p.Journey = journeyStep(r.Journey)
		}
		for _, c := range r.Contributions {
			p.Contributions = append(p.Contributions, &nbapb.Contribution{Feature: c.Feature, Weight: c.Weight})
		}
		out.Recommendations[i] = p
	}
	sups := make([]nbapb.Suppression, len(res.Suppressed))
	// The clear times in one allocation, not one each.
	var clears int
	for i := range res.Suppressed {
		if !res.Suppressed[i].ClearsAt.IsZero() {
			clears++
		}
	}
	stamps := make([]timestamppb.Timestamp, clears)
	// Runs of one reason are common (a channel without consent, content
	// not approved): the last code is kept rather than looked up again.
	var lastReason decision.Reason
	lastCode := nbapb.SuppressionReason_SUPPRESSION_REASON_UNSPECIFIED
	for i := range res.Suppressed {
		s := &res.Suppressed[i]
		if s.Reason != lastReason {
			lastReason, lastCode = s.Reason, reasonCode(s.Reason)
		}
		sups[i].ActionId = s.ActionID
		sups[i].Reason = lastCode
		sups[i].Detail = s.Detail
		if !s.ClearsAt.IsZero() {
			t := &stamps[0]
			stamps = stamps[1:]
			t.Seconds, t.Nanos = s.ClearsAt.Unix(), int32(s.ClearsAt.Nanosecond())
			sups[i].ClearsAt = t
		}
		out.Suppressed[i] = &sups[i]
	}
	return out
}

func event(e *nbapb.Event) recipient.Event {
	return recipient.Event{
		ID: e.GetEventId(), HCPID: e.GetHcpId(), Type: fromEventType(e.GetType()),
		Channel: fromChannel(e.GetChannel()), ActionID: e.GetActionId(), Topic: e.GetTopic(),
		DecisionID: e.GetDecisionId(), OccurredAt: fromTS(e.GetOccurredAt()),
		Purpose: arbiter.Purpose(e.GetPurpose()), MessageID: e.GetMessageId(), ReservationID: e.GetReservationId(),
	}
}

func profile(p *nbapb.Profile) recipient.Profile {
	out := recipient.Profile{
		HCPID: p.GetHcpId(), Specialty: p.GetSpecialty(), Market: p.GetMarket(),
		Audience: fromAudience(p.GetAudience()), Segment: p.GetSegment(), TimeZone: p.GetTimeZone(),
		Attributes: p.GetAttributes(), UpdatedAt: fromTS(p.GetUpdatedAt()), Territories: p.GetTerritories(),
	}
	for _, a := range p.GetAddresses() {
		if ch := fromChannel(a.GetChannel()); ch.Valid() {
			out.Addresses[ch] = a.GetAddressRef()
		}
	}
	return out
}

func toProfile(p *recipient.Profile) *nbapb.Profile {
	out := &nbapb.Profile{
		HcpId: p.HCPID, Specialty: p.Specialty, Market: p.Market, Audience: nbapb.Audience(p.Audience),
		Segment: p.Segment, TimeZone: p.TimeZone, Attributes: p.Attributes, UpdatedAt: ts(p.UpdatedAt),
		Territories: p.Territories, UpdatedBy: p.UpdatedBy,
	}
	for ch, ref := range p.Addresses {
		if ref != "" {
			out.Addresses = append(out.Addresses, &nbapb.ChannelAddress{Channel: toChannel(arbiter.Channel(ch)), AddressRef: ref})
		}
	}
	return out
}

func toCounters(c *recipient.Counters) *nbapb.Counters {
	out := &nbapb.Counters{Topics: c.Topics, LastEngagement: ts(c.LastEngagement)}
	for _, ch := range arbiter.Channels() {
		if c.Engagement[ch] == 0 && c.Sent[ch] == 0 && c.LastContact[ch].IsZero() {
			continue
		}
		out.Channels = append(out.Channels, &nbapb.ChannelCounters{
			Channel: toChannel(ch), Engagement: c.Engagement[ch], Sent: c.Sent[ch], LastContact: ts(c.LastContact[ch]),
		})
	}
	return out
}

func consentRecord(r *nbapb.ConsentRecord) consent.Record {
	return consent.Record{
		Channel: fromChannel(r.GetChannel()), Purpose: fromPurpose(r.GetPurpose()),
		Topic: r.GetTopic(), Address: r.GetAddressRef(), Status: fromStatus(r.GetStatus()),
		CapturedAt: fromTS(r.GetCapturedAt()), ExpiresAt: fromTS(r.GetExpiresAt()),
		Source: r.GetSource(), CapturedBy: r.GetCapturedBy(), NoticeVersion: r.GetNoticeVersion(),
	}
}

func toConsentRecord(r *consent.Record) *nbapb.ConsentRecord {
	return &nbapb.ConsentRecord{
		Channel: toChannel(r.Channel), Purpose: nbapb.Purpose(r.Purpose), Topic: r.Topic,
		AddressRef: r.Address, Status: nbapb.ConsentStatus(r.Status), CapturedAt: ts(r.CapturedAt),
		ExpiresAt: ts(r.ExpiresAt), Source: r.Source, CapturedBy: r.CapturedBy, NoticeVersion: r.NoticeVersion,
	}
}

func toLedgerEntry(e *consent.LedgerEntry) *nbapb.LedgerEntry {
	out := &nbapb.LedgerEntry{
		Seq: e.Seq, RecordedAt: ts(e.RecordedAt), Applied: e.Applied, MarkedComplete: e.MarkedComplete,
		Principal: e.Principal, Erased: e.Erased,
	}
	if e.Record.Channel.Valid() { // an entry that only wrote the completeness marker has no record
		out.Record = toConsentRecord(&e.Record)
	}
	return out
}

func importItem(req *nbapb.ImportProfilesRequest) recipient.ImportItem {
	item := recipient.ImportItem{
		Profile: profile(req.GetProfile()), ConsentComplete: req.GetConsentComplete(),
		CapturedBy: req.GetCapturedBy(),
	}
	for _, r := range req.GetConsents() {
		item.Consent = append(item.Consent, consentRecord(r))
	}
	return item
}

// journeyStep converts the journey step a recommendation is.
func journeyStep(js *decision.JourneyStep) *nbapb.JourneyStep {
	out := &nbapb.JourneyStep{JourneyId: js.Journey.ID, JourneyName: js.Journey.Name, Description: js.Sentence()}
	if js.Step >= 0 {
		out.StepId, out.Step = js.Journey.Steps[js.Step].ID, int32(js.Step+1)
	}
	if js.Progress.OffRamp != nil {
		out.OffRampId = js.Progress.OffRamp.ID
	}
	return out
}
