package consent

import (
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
)

// Query is one contact to check: may the recipient be reached on Channel,
// at Address, for Purpose, about Topic, at time At?
type Query struct {
	Channel arbiter.Channel
	Purpose arbiter.Purpose
	// Topic is the product or topic of the content ("" for none). Only
	// topic-less records and records for exactly this topic match.
	Topic string
	// Address is the recipient's current address reference on Channel, ""
	// if none is known. Only address-less records and records for exactly
	// this address match: a consent for an old address does not cover a
	// new one.
	Address string
	// Market is the recipient's market ("US", "EU"), for the Policy default.
	Market string
	// Defaults, when set, are the Policy's defaults for Market, looked up
	// once (Policy.Market) for all of a decision's queries. They must be
	// this Policy's, for this Market.
	Defaults *MarketDefaults
	// At is the send time. An opt-in that expires at or before At does
	// not count.
	At time.Time
}

// Outcome is the result of evaluating consent for one Query. Its zero value
// is DeniedUnknown, so that a Verdict nobody filled in denies.
type Outcome uint8

const (
	// DeniedUnknown: the consent data is missing, not proven complete by the
	// marker, or the decisive record has an unreadable status.
	DeniedUnknown Outcome = iota
	// Allowed: an opt-in covers the contact, or the market's default is
	// opt-out and no record says otherwise.
	Allowed
	// DeniedBarred: the channel is barred outright for this recipient.
	DeniedBarred
	// DeniedOptOut: the decisive record is an opt-out.
	DeniedOptOut
	// DeniedNoRecord: no record matches and the market requires opt-in.
	DeniedNoRecord
	// DeniedExpired: the decisive record is an opt-in that expired at or
	// before the send time.
	DeniedExpired
	// DeniedPending: the decisive record is an opt-in still awaiting its
	// double opt-in confirmation.
	DeniedPending
	// DeniedInvalid: the query has no valid channel, purpose or send time,
	// so there is nothing consent could cover.
	DeniedInvalid
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"denied_unknown", "allowed", "denied_barred", "denied_opt_out",
	"denied_no_record", "denied_expired", "denied_pending", "denied_invalid",
}

// String returns a stable snake_case name, suitable for metric labels.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "invalid"
}

// Verdict is the answer for one Query.
type Verdict struct {
	Outcome Outcome
	// Record is the index in State.Records of the decisive record, or -1
	// when no record decided (no match, no data, invalid query).
	Record int
	// ByDefault is true when the contact is allowed only by the market's
	// opt-out default.
	ByDefault bool
}

// Allowed reports whether the contact may be made.
func (v Verdict) Allowed() bool { return v.Outcome == Allowed }

// Specificity levels of a matching record; a higher level is more specific
// and decides over every lower one, whatever the capture times.
const (
	levelNone    = -1
	levelChannel = 0 // no topic, no address
	levelTopic   = 1 // topic, no address
	levelAddress = 2 // address, with or without topic
)

// matchLevel returns how specifically r covers q, or levelNone when it does
// not cover it. The caller has checked r.Channel.
func matchLevel(r *Record, q *Query) int {
	// A consent is given per purpose: a medical opt-in says nothing about
	// promotion, so a record for another purpose does not match at all.
	if r.Purpose != q.Purpose {
		return levelNone
	}
	if r.Topic != "" && r.Topic != q.Topic {
		return levelNone
	}
	if r.Address != "" {
		// q.Address == "" (no known address) matches no address record.
		if r.Address != q.Address {
			return levelNone
		}
		return levelAddress
	}
	if r.Topic != "" {
		return levelTopic
	}
	return levelChannel
}

// precedence lists the statuses from the least to the most restrictive.
// At equal capture times the more restrictive status wins, so that an
// opt-out captured at the same instant as an opt-in prevails whatever the
// order the two arrived in. This list is the only statement of the order:
// the evaluation below and the storage adapter's write script (which is
// handed PrecedenceOrder) both use it.
var precedence = [...]Status{Cleared, OptIn, Pending, OptOut, Barred}

// Precedence is s's rank in the tie-break order: higher wins at equal
// capture times. An unknown status ranks above every known one (it then
// denies).
func (s Status) Precedence() int {
	for i, p := range precedence {
		if p == s {
			return i
		}
	}
	return len(precedence)
}

// PrecedenceOrder returns the statuses from the least to the most
// restrictive (see Precedence).
func PrecedenceOrder() []Status { return append([]Status(nil), precedence[:]...) }

// Supersedes reports whether r replaces cur as the current record of the
// same scope: it was captured later; or at the same instant with a status
// of higher precedence; or at the same instant with the same status and
// an earlier expiry (no expiry is the latest), so that of two opt-ins
// captured together the shorter stands, whichever arrived first.
func Supersedes(r, cur *Record) bool {
	if !r.CapturedAt.Equal(cur.CapturedAt) {
		return r.CapturedAt.After(cur.CapturedAt)
	}
	if rp, cp := r.Status.Precedence(), cur.Status.Precedence(); rp != cp {
		return rp > cp
	}
	return !r.ExpiresAt.IsZero() && (cur.ExpiresAt.IsZero() || r.ExpiresAt.Before(cur.ExpiresAt))
}

// Evaluate decides whether the contact described by q is allowed by the
// recipient's consent s, following the rules in DOMAIN.md:
//
//  1. No state, or a state without the completeness marker: DeniedUnknown.
//  2. A Barred record for the channel: DeniedBarred.
//  3. Among records for the channel and purpose whose topic and address are
//     empty or equal to the query's, the most specific level decides
//     (address, then topic, then channel); within it the most recently
//     captured record, and at equal capture times the most restrictive.
//     A broader opt-out captured at or after that record withdraws it.
//  4. That record decides: opt-out, pending and expired opt-ins deny; an
//     opt-in allows.
//  5. No matching record: the market's default for the channel.
//
// Evaluate does no I/O and does not allocate. A nil Policy requires opt-in
// everywhere.
func (p *Policy) Evaluate(s *State, q Query) Verdict {
	if !q.Channel.Valid() || !q.Purpose.Valid() || q.At.IsZero() {
		return Verdict{Outcome: DeniedInvalid, Record: -1}
	}
	// Rule 1: unknown means deny, even when an opt-in is present: without
	// the marker a withdrawal may be among the records not loaded.
	if s == nil || !s.Complete {
		return Verdict{Outcome: DeniedUnknown, Record: -1}
	}

	best, bestLevel := -1, levelNone
	// The most recent opt-out at each level, for the withdrawal rule below.
	optOut := [levelAddress + 1]int{-1, -1, -1}
	for i := range s.Records {
		r := &s.Records[i]
		if r.Channel != q.Channel {
			continue
		}
		// Rule 2: a bar covers every purpose, topic and address, and beats
		// any opt-in however recent.
		if r.Status == Barred {
			return Verdict{Outcome: DeniedBarred, Record: i}
		}
		if r.Status == Cleared {
			continue // a lifted bar: the other records decide
		}
		level := matchLevel(r, &q)
		if level == levelNone {
			continue
		}
		if level > bestLevel || level == bestLevel && Supersedes(r, &s.Records[best]) {
			best, bestLevel = i, level
		}
		if r.Status == OptOut && (optOut[level] < 0 || r.CapturedAt.After(s.Records[optOut[level]].CapturedAt)) {
			optOut[level] = i
		}
	}

	// Withdrawal: the most specific level decides, but a broader opt-out
	// captured at or after the deciding record still withdraws it ("stop
	// all promotional email" after an opt-in for one address or topic).
	// Fail closed: of two readings of rule 3, the one that denies.
	if best >= 0 && s.Records[best].Status != OptOut {
		for level := levelChannel; level < bestLevel; level++ {
			if o := optOut[level]; o >= 0 && !s.Records[o].CapturedAt.Before(s.Records[best].CapturedAt) {
				return Verdict{Outcome: DeniedOptOut, Record: o}
			}
		}
	}

	// Rule 5: no record. Rule 1 already proved the data complete, so the
	// absence of a record is real and the market default may apply.
	if best < 0 {
		d := OptInRequired
		switch {
		case q.Defaults != nil && q.Channel.Valid():
			d = q.Defaults[q.Channel]
		default:
			d = p.defaultFor(q.Market, q.Channel)
		}
		if d == OptOutDefault {
			return Verdict{Outcome: Allowed, Record: -1, ByDefault: true}
		}
		return Verdict{Outcome: DeniedNoRecord, Record: -1}
	}

	// Rule 4.
	r := &s.Records[best]
	switch r.Status {
	case OptOut:
		return Verdict{Outcome: DeniedOptOut, Record: best}
	case Pending:
		return Verdict{Outcome: DeniedPending, Record: best}
	case OptIn:
		// ExpiresAt is the first instant the opt-in no longer counts.
		if !r.ExpiresAt.IsZero() && !q.At.Before(r.ExpiresAt) {
			return Verdict{Outcome: DeniedExpired, Record: best}
		}
		return Verdict{Outcome: Allowed, Record: best}
	}
	return Verdict{Outcome: DeniedUnknown, Record: best}
}

// Explain returns a one-line, human-readable reason for v, for the reasons
// shown to reps and the suppressions reported to platforms. s and q must be
// those v was evaluated from. It names channels, purposes, topics, markets,
// dates and source systems only: never an address or other personal data.
func (v Verdict) Explain(s *State, q Query) string {
	var r *Record
	if s != nil && v.Record >= 0 && v.Record < len(s.Records) {
		r = &s.Records[v.Record]
	}
	what := q.Purpose.String() + " " + q.Channel.String()
	switch v.Outcome {
	case Allowed:
		if v.ByDefault || r == nil {
			return fmt.Sprintf("allowed by %s opt-out default for %s", marketName(q.Market), q.Channel)
		}
		return fmt.Sprintf("opted in to %s%s on %s%s", what, scope(r), date(r.CapturedAt), source(r))
	case DeniedBarred:
		if r != nil {
			return fmt.Sprintf("%s barred on %s%s", q.Channel, date(r.CapturedAt), source(r))
		}
		return fmt.Sprintf("%s barred", q.Channel)
	case DeniedOptOut:
		if r != nil {
			return fmt.Sprintf("opted out of %s%s on %s%s", what, scope(r), date(r.CapturedAt), source(r))
		}
		return "opted out of " + what
	case DeniedPending:
		if r != nil {
			return fmt.Sprintf("opt-in to %s%s pending confirmation since %s%s", what, scope(r), date(r.CapturedAt), source(r))
		}
		return "opt-in to " + what + " pending confirmation"
	case DeniedExpired:
		if r != nil {
			return fmt.Sprintf("opt-in to %s%s expired on %s", what, scope(r), date(r.ExpiresAt))
		}
		return "opt-in to " + what + " expired"
	case DeniedNoRecord:
		return fmt.Sprintf("no consent on record for %s; %s requires opt-in for %s", what, marketName(q.Market), q.Channel)
	case DeniedInvalid:
		return "no valid channel, purpose or send time to evaluate consent for"
	}
	if r != nil && !r.Status.Valid() {
		return fmt.Sprintf("consent record for %s has an unreadable status", what)
	}
	return "consent data not loaded for this HCP"
}

// scope describes how specific r is, without naming its address.
func scope(r *Record) string {
	switch {
	case r.Address != "" && r.Topic != "":
		return " about " + r.Topic + " at the current address"
	case r.Address != "":
		return " at the current address"
	case r.Topic != "":
		return " about " + r.Topic
	}
	return ""
}

func source(r *Record) string {
	if r.Source == "" {
		return ""
	}
	return " (source " + r.Source + ")"
}

func date(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func marketName(m string) string {
	if m == "" {
		return "unknown market"
	}
	return m
}
